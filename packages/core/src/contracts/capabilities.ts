/**
 * Numeric precision an inference engine computes or rounds its weights to: `fp32`; `bf16` (weights rounded
 * to bfloat16); `fp16` (weights and matrix products in float16); `fp8` (projection weights fake-quantised
 * to FP8 E4M3 with FP32 scales, the rest as `bf16`; see `Fp8WeightOptions`).
 */
export type InferencePrecision = 'fp32' | 'fp16' | 'bf16' | 'fp8';

export interface RolloutEngineCapabilities {
  /** Returns a RoutingRecord with every trajectory. */
  readonly recordRouting: boolean;
  /** Reuses KV (and routing) of cached prefixes. */
  readonly prefixCache: boolean;
  /** Generates several requests in one batch. */
  readonly batchedGeneration: boolean;
  readonly precisions: readonly InferencePrecision[];
  /** Honours `GenerateRequest.seedFork`, so a request's samples do not depend on its position in a call. */
  readonly seedFork?: boolean;
}

export interface PolicyTrainerCapabilities {
  /** `logprobs(..., {routing: 'free'})` returns the routing it chose. */
  readonly recordRouting: boolean;
  /** Accepts `routing: 'replay'` with a RoutingRecord per sequence. */
  readonly routingReplay: boolean;
  /** Honours `partialReplay` on replayed routing (prime-rl's score-ratio test) and reports `replaceRate`. */
  readonly partialReplay?: boolean;
  /** Can return per-token entropy. */
  readonly entropy: boolean;
  /** saveCheckpoint / loadCheckpoint. */
  readonly checkpoints: boolean;
}
