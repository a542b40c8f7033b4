import type { ModelConfig } from '../config/model-config.js';
import type { RoutingRecord } from '../routing/routing-record.js';
import type { NamedTensors } from '../tensors/tensor.js';
import type { PolicyTrainerCapabilities } from './capabilities.js';
import type { Objective } from './objective.js';
import type { RoutingMode } from './replay-mode.js';

export interface TrainingSequence {
  readonly promptIds: Int32Array;
  readonly responseIds: Int32Array;
  /**
   * Routing to replay, covering at least prompt + response − 1 positions (positions beyond it, i.e. the final
   * token, route freely; their outputs feed no loss). Required when `routing: 'replay'`.
   */
  readonly routing?: RoutingRecord;
  /**
   * The weight version of the engine that produced this sequence's logprobs (`Trajectory.weightVersion`).
   * When it and `routing.weightVersion` are both set and differ, replay refuses the pair (`ROUTING_STALE`)
   * unless `allowStaleRouting` is set: a route travels with its token's logprob and their version.
   */
  readonly weightVersion?: number;
}

/** Options every trainer call that may replay routing accepts. */
export interface RoutingOptions {
  readonly routing: RoutingMode;
  /** Replay routing whose weight version differs from its sequence's `weightVersion`. Default false. */
  readonly allowStaleRouting?: boolean;
  /**
   * Partial replay (prime-rl), with `routing: 'replay'` only: a replayed expert is kept only when the
   * trainer's own router probability for it is at least `minScoreRatio` × the trainer's k-th largest
   * probability at that position and layer; otherwise the slot takes the trainer's best expert not yet chosen
   * (the k experts stay distinct). 0 replays everything; a ratio above 1 / (k-th probability) routes freely.
   * Needs `capabilities.partialReplay` (`UNSUPPORTED` otherwise); results report `replaceRate`.
   */
  readonly partialReplay?: PartialReplayOptions;
}

export interface PartialReplayOptions {
  /** Finite and ≥ 0. */
  readonly minScoreRatio: number;
}

export interface TrainingBatch {
  readonly sequences: readonly TrainingSequence[];
}

export interface LogprobOptions extends RoutingOptions {
  /** Logprobs of softmax(logits / temperature), matching the engine's definition. Default 1. */
  readonly temperature?: number;
  readonly returnEntropy?: boolean;
}

export interface LogprobResult {
  /** Per response token, flattened in sequence order; see `sequenceOffsets`. */
  readonly logprobs: Float32Array;
  readonly sequenceOffsets: Int32Array;
  readonly entropy?: Float32Array;
  /** In free mode: the routing the trainer chose for each sequence (prompt + response − 1 positions). */
  readonly routing?: readonly RoutingRecord[];
  /** With `partialReplay`: the fraction of replayed expert slots the trainer replaced by its own choice. */
  readonly replaceRate?: number;
}

export interface TrainStepOptions extends RoutingOptions {
  readonly temperature?: number;
}

export interface TrainStepResult {
  readonly loss: number;
  readonly gradNorm: number;
  /** True when the loss or gradients were not finite and the update was skipped (weights unchanged). */
  readonly skipped: boolean;
  /** Includes `replaceRate` (as in `LogprobResult`) when the step used `partialReplay`. */
  readonly metrics: Readonly<Record<string, number>>;
}

/** A trainer that computes logprobs and updates the policy (the training half of R3). */
export interface PolicyTrainer {
  readonly specificationVersion: 'v1';
  readonly backendName: string;
  readonly capabilities: PolicyTrainerCapabilities;
  readonly config: ModelConfig;
  logprobs(batch: TrainingBatch, options: LogprobOptions): Promise<LogprobResult>;
  /** One optimiser step on the batch: forward, objective, backward of Σ gradient·logprob, update. */
  trainStep(batch: TrainingBatch, objective: Objective, options: TrainStepOptions): Promise<TrainStepResult>;
  exportWeights(): Promise<NamedTensors>;
  loadWeights(weights: NamedTensors): Promise<void>;
  saveCheckpoint(directory: string): Promise<void>;
  loadCheckpoint(directory: string): Promise<void>;
  dispose(): Promise<void>;
}
