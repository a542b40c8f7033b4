import { registerOnnxBackend } from '@moerl/backend-onnx';
import { registerTfjsBackend } from '@moerl/backend-tfjs';
import {
  type BackendKind,
  type CreateEngineOptions,
  type CreateTrainerOptions,
  listBackends,
  type PolicyTrainer,
  type RolloutEngine,
  registerBackend,
  resolveBackend,
} from '@moerl/core';
import { createReferencePolicyTrainer, createReferenceRolloutEngine } from '@moerl/testkit';

function registerOnce(kind: BackendKind, name: string, register: () => void): void {
  if (!listBackends(kind).some((backend) => backend.name === name)) register();
}

/**
 * Registers the backends this package knows: TensorFlow.js for training (tfjs-node-gpu, tfjs-node, wasm,
 * cpu; each loaded only when tried) and onnxruntime-node for rollout. The pure-TypeScript reference implementations from @moerl/testkit
 * come last: slow, and their trainer updates the LM head only, but they need nothing installed.
 */
export function registerDefaultBackends(): void {
  if (!listBackends('trainer').some((backend) => backend.name.startsWith('tfjs-'))) registerTfjsBackend();
  registerOnnxBackend();
  registerOnce('trainer', 'reference', () =>
    registerBackend({
      name: 'reference',
      kind: 'trainer',
      priority: 0,
      create: () => ({
        name: 'reference',
        createTrainer: async (options) => createReferencePolicyTrainer(options),
      }),
    }),
  );
  registerOnce('rollout', 'reference', () =>
    registerBackend({
      name: 'reference',
      kind: 'rollout',
      priority: 0,
      create: () => ({
        name: 'reference',
        createEngine: async (options) => createReferenceRolloutEngine(options),
      }),
    }),
  );
}

export interface ResolvedRunBackends {
  createTrainer(options: CreateTrainerOptions): Promise<PolicyTrainer>;
  createEngine(options: CreateEngineOptions): Promise<RolloutEngine>;
  /** The registry name of the chosen rollout backend (what a worker thread resolves to build the same). */
  readonly engineName: string;
  /** One line per kind saying which backend was chosen and what was skipped. */
  readonly summary: readonly string[];
}

const preferenceOf = (name: string) => (name === 'auto' ? {} : { preferred: name });

export async function resolveRunBackends(names: {
  trainer: string;
  engine: string;
}): Promise<ResolvedRunBackends> {
  registerDefaultBackends();
  const trainer = await resolveBackend('trainer', preferenceOf(names.trainer));
  const engine = await resolveBackend('rollout', preferenceOf(names.engine));
  return {
    createTrainer: (options) => trainer.backend.createTrainer(options),
    createEngine: (options) => engine.backend.createEngine(options),
    engineName: engine.backend.name,
    summary: [trainer.summary, engine.summary],
  };
}
