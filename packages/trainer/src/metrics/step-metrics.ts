/**
 * One line of `metrics.jsonl`: what happened in one RL step. Rates are fractions in [0, 1]; KL values are
 * per-token means of the k3 estimator between trainer and engine logprobs on the same tokens.
 */
export interface StepMetrics {
  /** When the row was written (after the step and its evaluation), ISO 8601 in UTC. Absent in rows written before it existed. */
  readonly time?: string;
  readonly step: number;
  /** The learning rate of the step's last applied update, as the trainer reports it (absent when it does not). */
  readonly learningRate?: number;
  /**
   * Mean over the step's applied updates of every numeric metric the objective returned (e.g. a custom
   * objective's own), by name; a metric NaN on every update is NaN.
   */
  readonly objective?: Readonly<Record<string, number>>;
  readonly rewardMean: number;
  readonly rewardStd: number;
  /** Fraction of sampled responses that were exactly right. */
  readonly accuracy: number;
  readonly responseLength: number;
  readonly loss: number;
  readonly clipFraction: number;
  readonly gradNorm: number;
  /** The load-balancing loss (NaN when its coefficient is 0) and the busiest expert's load over a balanced one's (worst layer). */
  readonly routerAuxLoss?: number;
  /** Share of tokens whose importance weight exp(old − engine logprob) exceeds the TIS cap. */
  readonly tisClipFraction?: number;
  readonly expertLoadImbalance?: number;
  /**
   * Staleness of the replayed routes: the trainer's weight version minus the version that recorded the
   * routing, the largest over the step's trajectories (0 in a synchronous run; NaN without engine routing).
   */
  readonly routeAge?: number;
  /**
   * The trainer's weight version minus the oldest version that sampled the step's rollouts: 0 in a synchronous
   * run, 1 from the second step on with rollout.async 1.
   */
  readonly rolloutStaleness?: number;
  /** Multi-turn tasks: conversations whose environment failed this step (finish reason `error`, no loss). */
  readonly environmentErrors?: number;
  /** Multi-turn tasks: mean model turns per conversation, sampled tokens per model turn, the share of response tokens the environment inserted, and prompt positions (with their routing rows) the prefix cache served across turns. */
  readonly turnsPerEpisode?: number;
  /** Multi-turn tasks: mean tool calls per conversation (turns the environment marked `toolCall`). */
  readonly toolCallsPerEpisode?: number;
  readonly tokensPerTurn?: number;
  readonly observationTokenShare?: number;
  readonly routingRowsReused?: number;
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
  /** Largest |trainer − engine| logprob difference, free and replayed. */
  readonly maxAbsDeltaFree?: number;
  readonly maxAbsDeltaReplay?: number;
  /** NeMo RL's token_mult_prob_error: mean of exp(|Δlogp|) over tokens (1 = identical). */
  readonly tokenMultProbErrorFree?: number;
  readonly tokenMultProbErrorReplay?: number;
  /**
   * Where the mismatch lives: share of the free-routing KL on tokens whose routing flipped, and the mean
   * k3 KL on flipped / steady tokens, free and replayed (NaN where a side has no tokens).
   */
  readonly klFreeShareOnFlippedTokens?: number;
  readonly klFreeFlipped?: number;
  readonly klFreeSteady?: number;
  readonly klReplayFlipped?: number;
  readonly klReplaySteady?: number;
  /** |Δlogp| token counts per decade bin (edges in `ABS_DELTA_BIN_EDGES`): free, free on flipped tokens, replayed. */
  readonly absDeltaHistogramFree?: readonly number[];
  readonly absDeltaHistogramFreeFlipped?: readonly number[];
  readonly absDeltaHistogramReplay?: readonly number[];
  /** Per MoE layer: fraction of expert choices where the trainer's free routing differs from the engine's. */
  readonly routingDisagreement: readonly number[];
  /** Fraction of tokens whose routing differs in at least one layer. */
  readonly tokensWithRoutingDifference: number;
  readonly prefixCacheHitRate: number;
  readonly rolloutTokensPerSecond: number;
  readonly trainTokensPerSecond: number;
  readonly rolloutSeconds: number;
  readonly trainSeconds: number;
  /** How long the step waited for its rollouts (with rollout.async, what the overlap with training left). */
  readonly rolloutWaitSeconds?: number;
  /** Held-out accuracy, on steps where an evaluation ran. */
  readonly evalAccuracy?: number;
  /** Greedy accuracy on problems the warm start trained on (up to eval.size of them), on the same steps. */
  readonly seenEvalAccuracy?: number;
}

/** A finished or running run as the report reads it. */
export interface RunRecord {
  readonly name: string;
  readonly config: unknown;
  readonly metrics: readonly StepMetrics[];
  /** Held-out accuracy of the policy RL started from (after the warm start), when it was measured. */
  readonly initialEvalAccuracy?: number;
  /** Accuracy of that policy on problems its warm start trained on. */
  readonly initialSeenEvalAccuracy?: number;
}
