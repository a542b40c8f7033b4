/**
 * One line of `metrics.jsonl`: what happened in one RL step. Rates are fractions in [0, 1]; KL values are
 * per-token means of the k3 estimator between trainer and engine logprobs on the same tokens.
 */
export interface StepMetrics {
  readonly step: number;
  readonly rewardMean: number;
  readonly rewardStd: number;
  /** Fraction of sampled responses that were exactly right. */
  readonly accuracy: number;
  readonly responseLength: number;
  readonly loss: number;
  readonly clipFraction: number;
  readonly gradNorm: number;
  /** Update steps skipped because the loss or a gradient was not finite (cumulative). */
  readonly skippedSteps: number;
  /**
   * True when this RL step left the weights as they were: every update was skipped, or the update made a
   * weight non-finite and was undone. Absent otherwise.
   */
  readonly skipped?: boolean;
  /** Trainer vs engine k3 KL with the trainer routing freely, and replaying the engine's routing. */
  readonly klFree: number;
  readonly klReplay: number;
  /** Fraction of tokens with |Δlogp| > ln 2, free and replayed. */
  readonly extremeTokenFractionFree: number;
  readonly extremeTokenFractionReplay: number;
  /** Per MoE layer: fraction of expert choices where the trainer's free routing differs from the engine's. */
  readonly routingDisagreement: readonly number[];
  /** Fraction of tokens whose routing differs in at least one layer. */
  readonly tokensWithRoutingDifference: number;
  readonly prefixCacheHitRate: number;
  readonly rolloutTokensPerSecond: number;
  readonly trainTokensPerSecond: number;
  readonly rolloutSeconds: number;
  readonly trainSeconds: number;
  /** Held-out accuracy, on steps where an evaluation ran. */
  readonly evalAccuracy?: number;
}

/** A finished or running run as the report reads it. */
export interface RunRecord {
  readonly name: string;
  readonly config: unknown;
  readonly metrics: readonly StepMetrics[];
  /** Held-out accuracy of the policy RL started from (after the warm start), when it was measured. */
  readonly initialEvalAccuracy?: number;
}
