import type { RoutingRecord } from '../routing/routing-record.js';

/**
 * Why a trajectory ended. Engines return `stop` (end of sequence), `length` (token budget) or `abort`;
 * `error` is set by the trainer when a multi-turn environment failed (the trajectory stays out of the loss).
 */
export type FinishReason = 'stop' | 'length' | 'abort' | 'error';

/** One sampled response to one prompt, with what the inference engine saw while producing it. */
export interface Trajectory {
  readonly id: string;
  /** Which prompt group (RolloutGroup) the trajectory belongs to. */
  readonly groupId: string;
  readonly promptIds: Int32Array;
  readonly responseIds: Int32Array;
  /**
   * The engine's logprob of each response token, at the sampling temperature (length = responseIds.length);
   * 0 where `lossMask` is 0 (tokens the engine did not sample).
   */
  readonly engineLogprobs: Float32Array;
  /**
   * Multi-turn trajectories: 1 on response tokens the model sampled, 0 on tokens the environment inserted
   * between turns (tool output, observations), which no objective, advantage or mismatch metric counts.
   * Routing still covers them: the engine fed them through the model. Absent: every token was sampled.
   */
  readonly lossMask?: Uint8Array;
  /**
   * The experts the engine routed each fed position to: prompt + response − 1 positions (the final sampled
   * token is never fed forward). `null` only when the engine does not record routing.
   */
  readonly routing: RoutingRecord | null;
  /** Sequence-level reward, set once scored. */
  readonly reward?: number;
  /** Optional per-token rewards (length = responseIds.length). */
  readonly tokenRewards?: Float32Array;
  readonly finishReason: FinishReason;
  /** The weight version of the engine that produced the trajectory. */
  readonly weightVersion: number;
}

/** The G trajectories sampled for one prompt; group-relative algorithms (GRPO, GSPO) need them together. */
export interface RolloutGroup {
  readonly groupId: string;
  readonly promptIds: Int32Array;
  readonly trajectories: readonly Trajectory[];
}
