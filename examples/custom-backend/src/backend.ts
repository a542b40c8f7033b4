import { type BackendRegistry, globalBackendRegistry, type TrainerBackend } from '@moerl/core';
import { createPlainTsTrainer, PLAIN_TS_BACKEND_NAME } from './plain-ts-trainer.js';

/** What the registry hands out for `kind: 'trainer'`. */
export const plainTsTrainerBackend: TrainerBackend = {
  name: PLAIN_TS_BACKEND_NAME,
  createTrainer: async (options) => createPlainTsTrainer(options),
};

export interface RegisterPlainTsOptions {
  /** Higher wins when no backend is named; negative means "only by name". Default 0: the last resort. */
  readonly priority?: number;
  /** Default: the process-wide registry that `resolveBackend` reads. */
  readonly registry?: BackendRegistry;
}

// One create function for every call, so registering twice is a no-op for the registry.
const create = () => plainTsTrainerBackend;

/** Registers the `plain-ts` trainer backend. */
export function registerPlainTsBackend(options: RegisterPlainTsOptions = {}): void {
  (options.registry ?? globalBackendRegistry()).register({
    name: PLAIN_TS_BACKEND_NAME,
    kind: 'trainer',
    priority: options.priority ?? 0,
    create,
  });
}
