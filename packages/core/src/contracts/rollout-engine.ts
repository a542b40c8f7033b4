import type { ModelConfig } from '../config/model-config.js';
import type { NamedTensors } from '../tensors/tensor.js';
import type { RolloutEngineCapabilities } from './capabilities.js';
import type { SamplingParams } from './sampling-params.js';
import type { Trajectory } from './trajectory.js';

export interface GenerateRequest {
  /** Caller's id; echoed as the trajectory's id prefix. */
  readonly id: string;
  readonly groupId: string;
  readonly promptIds: Int32Array;
  /** Overrides of the call's sampling params for this request (e.g. its own seed). */
  readonly samplingParams?: Partial<SamplingParams>;
  /**
   * The fork of the seed this request samples from (`createRandom(seed).fork(seedFork)`); default: its
   * position in the call. Setting it lets a server merge several calls into one without changing anyone's
   * samples. Honoured by engines that claim `capabilities.seedFork`; a non-negative safe integer.
   */
  readonly seedFork?: number;
}

export interface RolloutEngineStats {
  readonly weightVersion: number;
  readonly requests: number;
  readonly promptTokens: number;
  readonly generatedTokens: number;
  /** Prompt tokens whose KV (and routing) came from the prefix cache. */
  readonly cachedPromptTokens: number;
  readonly generateSeconds: number;
  /** The part of `generateSeconds` spent prefilling prompts, for engines that tell it apart from decoding. */
  readonly prefillSeconds?: number;
}

/** An inference engine that samples rollouts and records routing (the inference half of R3). */
export interface RolloutEngine {
  readonly specificationVersion: 'v1';
  readonly backendName: string;
  readonly capabilities: RolloutEngineCapabilities;
  readonly config: ModelConfig;
  /** One trajectory per request, in request order. */
  generate(requests: readonly GenerateRequest[], samplingParams: SamplingParams): Promise<Trajectory[]>;
  /** Replaces the weights; every trajectory generated afterwards carries `version`. Invalidates caches. */
  updateWeights(weights: NamedTensors, version: number): Promise<void>;
  stats(): RolloutEngineStats;
  dispose(): Promise<void>;
}
