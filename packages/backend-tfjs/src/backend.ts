import {
  type BackendRegistration,
  type BackendRegistry,
  type CreateTrainerOptions,
  globalBackendRegistry,
  type TrainerBackend,
} from '@moerl/core';
import { activateTfjsBackend, TFJS_BACKEND_ORDER, type TfjsBackendName } from './runtime/tfjs-runtime.js';
import { createTfjsPolicyTrainer, type TfjsPolicyTrainer } from './trainer/tfjs-policy-trainer.js';

export interface TfjsBackendOptions {
  /** tfjs backends to try, in order. Default: tfjs-node-gpu, tfjs-node, tfjs-wasm, tfjs-cpu. */
  readonly backends?: readonly TfjsBackendName[];
}

/** A `trainer` backend over TensorFlow.js; its trainers are `TfjsPolicyTrainer`s. */
export interface TfjsTrainerBackend extends TrainerBackend {
  createTrainer(options: CreateTrainerOptions): Promise<TfjsPolicyTrainer>;
}

/**
 * The backend object the registry hands out. `backendOptions` given to `createTrainer` win over
 * `options.backends`.
 */
export function createTfjsBackend(options: TfjsBackendOptions = {}): TfjsTrainerBackend {
  const backends = options.backends ?? TFJS_BACKEND_ORDER;
  return {
    name: backends.length === 1 ? backends[0]! : 'tfjs',
    createTrainer: (trainerOptions) =>
      createTfjsPolicyTrainer({
        ...trainerOptions,
        backendOptions: { backends, ...trainerOptions.backendOptions },
      }),
  };
}

/** Registry priorities: the order the issue asks for, best first. */
export const TFJS_BACKEND_PRIORITIES: Readonly<Record<TfjsBackendName, number>> = {
  'tfjs-node-gpu': 40,
  'tfjs-node': 30,
  'tfjs-wasm': 20,
  'tfjs-cpu': 10,
};

// One registration object per backend, built once, so registering twice is a no-op, not a conflict.
const REGISTRATIONS: readonly BackendRegistration<'trainer'>[] = TFJS_BACKEND_ORDER.map((name) => ({
  name,
  kind: 'trainer',
  priority: TFJS_BACKEND_PRIORITIES[name],
  // Loads the optional package only now; throws BACKEND_UNAVAILABLE when it is not installed.
  create: async () => {
    await activateTfjsBackend(name);
    return createTfjsBackend({ backends: [name] });
  },
}));

/**
 * Registers the four tfjs trainer backends (tfjs-node-gpu, tfjs-node, tfjs-wasm, tfjs-cpu, best first) with
 * `registry` (default: the global one). Nothing is loaded until the registry resolves one.
 */
export function registerTfjsBackend(registry: BackendRegistry = globalBackendRegistry()): void {
  for (const registration of REGISTRATIONS) registry.register(registration);
}
