import type { ModelConfig } from '../config/model-config.js';
import type { Fp8WeightOptions } from '../quantization/fp8-weights.js';
import type { NamedTensors } from '../tensors/tensor.js';
import type { InferencePrecision } from './capabilities.js';
import type { PolicyTrainer } from './policy-trainer.js';
import type { RolloutEngine } from './rollout-engine.js';

export interface CreateTrainerOptions {
  readonly config: ModelConfig;
  readonly weights: NamedTensors;
  readonly seed?: number;
  readonly learningRate?: number;
  /** Clip the global gradient norm to this value; 0 or absent disables clipping. */
  readonly maxGradNorm?: number;
  /** Options only a specific backend understands, passed through untouched. */
  readonly backendOptions?: Readonly<Record<string, unknown>>;
}

export interface CreateEngineOptions {
  readonly config: ModelConfig;
  readonly weights: NamedTensors;
  readonly weightVersion?: number;
  readonly precision?: InferencePrecision;
  /** Scales and exclusions of the `fp8` precision; ignored by the others. */
  readonly fp8?: Fp8WeightOptions;
  readonly backendOptions?: Readonly<Record<string, unknown>>;
}

/** What a registered `trainer` backend provides. */
export interface TrainerBackend {
  readonly name: string;
  createTrainer(options: CreateTrainerOptions): Promise<PolicyTrainer>;
}

/** What a registered `rollout` backend provides. */
export interface RolloutBackend {
  readonly name: string;
  createEngine(options: CreateEngineOptions): Promise<RolloutEngine>;
}

/** Backend kinds and the object each kind's factory returns. */
export interface BackendKinds {
  trainer: TrainerBackend;
  rollout: RolloutBackend;
}

export type BackendKind = keyof BackendKinds;
