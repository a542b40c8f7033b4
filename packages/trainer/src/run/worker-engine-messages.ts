import type {
  CreateEngineOptions,
  GenerateRequest,
  ModelConfig,
  NamedTensors,
  RolloutEngineCapabilities,
  RolloutEngineStats,
  SamplingParams,
  Trajectory,
} from '@moerl/core';
import type { HttpRolloutEngineOptions } from '@moerl/rollout-http';
import type { SerializedError } from './serialized-error.js';

/** What a worker needs to build the engine the main thread would have built: a registered backend… */
export interface WorkerBackendEngineSpec {
  readonly kind: 'backend';
  /** The registered rollout backend to create (resolved in the main thread). */
  readonly backend: string;
  /** Modules that register plugin backends, imported in the worker first. */
  readonly plugins: readonly string[];
  readonly options: CreateEngineOptions;
}

/**
 * …or the HTTP engine over rollout servers, whose policies go through checkpoints under `weightDirectory`
 * (the function-valued weight sync is built in the worker, from these plain values).
 */
export interface WorkerHttpEngineSpec {
  readonly kind: 'http';
  readonly options: Omit<HttpRolloutEngineOptions, 'weightSync'>;
  readonly weightDirectory: string;
}

export type WorkerEngineSpec = WorkerBackendEngineSpec | WorkerHttpEngineSpec;

/** Main thread → rollout worker. Each call has an id its reply carries. */
export type WorkerEngineRequest =
  | { readonly type: 'create'; readonly id: number; readonly spec: WorkerEngineSpec }
  | {
      readonly type: 'generate';
      readonly id: number;
      readonly requests: readonly GenerateRequest[];
      readonly samplingParams: SamplingParams;
    }
  | {
      readonly type: 'updateWeights';
      readonly id: number;
      readonly weights: NamedTensors;
      readonly version: number;
    }
  | { readonly type: 'dispose'; readonly id: number };

/** Rollout worker → main thread; every reply carries the engine's stats after the call. */
export type WorkerEngineReply =
  | {
      readonly type: 'created';
      readonly id: number;
      readonly backendName: string;
      readonly capabilities: RolloutEngineCapabilities;
      readonly config: ModelConfig;
      readonly stats: RolloutEngineStats;
    }
  | {
      readonly type: 'generated';
      readonly id: number;
      readonly trajectories: Trajectory[];
      readonly stats: RolloutEngineStats;
    }
  | { readonly type: 'done'; readonly id: number; readonly stats?: RolloutEngineStats }
  | (SerializedError & { readonly type: 'error'; readonly id: number });
