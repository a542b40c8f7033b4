import { logprobMismatch, routingMismatch } from '@moerl/algos';
import {
  type LogprobResult,
  type RoutingRecord,
  routingDisagreement,
  sliceRoutingRecord,
  type Trajectory,
} from '@moerl/core';

export interface MismatchMetrics {
  readonly klFree: number;
  readonly klReplay: number;
  readonly extremeTokenFractionFree: number;
  readonly extremeTokenFractionReplay: number;
  /** Largest |trainer − engine| logprob difference of the step, free and replayed. */
  readonly maxAbsDeltaFree: number;
  readonly maxAbsDeltaReplay: number;
  /** NeMo RL's `token_mult_prob_error`: mean over tokens of exp(|Δlogp|) (1 = identical), free and replayed. */
  readonly tokenMultProbErrorFree: number;
  readonly tokenMultProbErrorReplay: number;
  readonly routingDisagreement: number[];
  /** Fraction of response tokens whose routing differs (trainer free vs engine) in at least one layer. */
  readonly tokensWithRoutingDifference: number;
  /**
   * Where the mismatch lives: the share of the free-routing k3 KL (summed over tokens) carried by the
   * tokens whose routing differs, and the mean k3 KL on those tokens and on the others, free and replayed.
   * NaN where a side has no tokens.
   */
  readonly klFreeShareOnFlippedTokens: number;
  readonly klFreeFlipped: number;
  readonly klFreeSteady: number;
  readonly klReplayFlipped: number;
  readonly klReplaySteady: number;
  /**
   * Token counts of |trainer − engine| per decade (`ABS_DELTA_BIN_EDGES`): free routing, free routing on
   * the tokens whose routing flipped, and replayed routing. Pooled over steps they give the |Δlogp|
   * distribution on a log scale.
   */
  readonly absDeltaHistogramFree: number[];
  readonly absDeltaHistogramFreeFlipped: number[];
  readonly absDeltaHistogramReplay: number[];
}

/** Lower edges of the |Δlogp| histogram bins: [0, 1e-6), [1e-6, 1e-5), …, [1, 10), [10, ∞). */
export const ABS_DELTA_BIN_EDGES: readonly number[] = [0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10];

function absDeltaBin(value: number): number {
  let bin = 0;
  while (bin + 1 < ABS_DELTA_BIN_EDGES.length && value >= ABS_DELTA_BIN_EDGES[bin + 1]!) bin++;
  return bin;
}

function absDeltaHistogram(trainer: Float32Array, engine: Float32Array, keep?: Uint8Array): number[] {
  const counts = new Array<number>(ABS_DELTA_BIN_EDGES.length).fill(0);
  for (let t = 0; t < trainer.length; t++) {
    if (keep !== undefined && keep[t] !== 1) continue;
    counts[absDeltaBin(Math.abs(trainer[t]! - engine[t]!))]! += 1;
  }
  return counts;
}

/**
 * For each response token, 1 when the expert sets the trainer (free) and the engine chose at the position
 * that produced it differ in at least one MoE layer. The token at response index t comes out of position
 * promptLength − 1 + t; a trajectory without both records counts as 0 everywhere.
 */
export function tokensWithFlippedRouting(
  trajectories: readonly Trajectory[],
  trainerRouting: readonly (RoutingRecord | undefined)[] | undefined,
  sequenceOffsets: Int32Array,
): Uint8Array {
  const flags = new Uint8Array(sequenceOffsets[trajectories.length] ?? 0);
  trajectories.forEach((trajectory, index) => {
    const engine = trajectory.routing;
    const trainer = trainerRouting?.[index];
    if (engine === null || trainer === undefined || engine.moeLayers === 0) return;
    // Positions from the last prompt token on produce the response tokens, one each.
    const first = trajectory.promptIds.length - 1;
    const { positionDiffers } = routingDisagreement(
      sliceRoutingRecord(engine, first),
      sliceRoutingRecord(trainer, first),
    );
    flags.set(positionDiffers.subarray(0, trajectory.responseIds.length), sequenceOffsets[index]!);
  });
  return flags;
}

function k3Sums(trainer: Float32Array, engine: Float32Array, flags: Uint8Array, keep: Uint8Array) {
  let flipped = 0;
  let steady = 0;
  let flippedTokens = 0;
  let steadyTokens = 0;
  for (let t = 0; t < flags.length; t++) {
    if (keep[t] !== 1) continue;
    const delta = trainer[t]! - engine[t]!;
    const k3 = Math.exp(delta) - delta - 1;
    if (flags[t] === 1) {
      flipped += k3;
      flippedTokens++;
    } else {
      steady += k3;
      steadyTokens++;
    }
  }
  return {
    share: flipped + steady === 0 ? Number.NaN : flipped / (flipped + steady),
    flipped: flippedTokens === 0 ? Number.NaN : flipped / flippedTokens,
    steady: steadyTokens === 0 ? Number.NaN : steady / steadyTokens,
  };
}

function tokenMultProbError(trainer: Float32Array, engine: Float32Array, keep: Uint8Array): number {
  let sum = 0;
  let count = 0;
  for (let t = 0; t < trainer.length; t++) {
    if (keep[t] !== 1) continue;
    sum += Math.exp(Math.abs(trainer[t]! - engine[t]!));
    count++;
  }
  return count === 0 ? Number.NaN : sum / count;
}

/**
 * Trainer vs engine on the engine's sampled tokens: logprob mismatch with the trainer routing freely and
 * replaying the engine's routing, how often the trainer's free routing differs from the engine's, and how
 * the mismatch splits between tokens whose routing flipped and the rest.
 * Routing is compared on the positions that produce response tokens (from the last prompt token on).
 */
export function mismatchMetrics(
  trajectories: readonly Trajectory[],
  engineLogprobs: Float32Array,
  free: LogprobResult,
  replay: LogprobResult | undefined,
  /** Multi-turn batches: 1 on sampled tokens; the others (observations) have no engine logprob to compare. */
  lossMask?: Uint8Array,
): MismatchMetrics {
  const masked = lossMask === undefined ? {} : { responseMask: lossMask };
  const freeMismatch = logprobMismatch({
    sequenceOffsets: free.sequenceOffsets,
    trainerLogprobs: free.logprobs,
    engineLogprobs,
    ...masked,
  });
  const replayMismatch =
    replay === undefined
      ? undefined
      : logprobMismatch({
          sequenceOffsets: replay.sequenceOffsets,
          trainerLogprobs: replay.logprobs,
          engineLogprobs,
          ...masked,
        });
  const pairs: { engine: RoutingRecord; trainer: RoutingRecord; startPosition: number }[] = [];
  trajectories.forEach((trajectory, index) => {
    const trainer = free.routing?.[index];
    if (trajectory.routing !== null && trainer !== undefined && trajectory.routing.moeLayers > 0) {
      pairs.push({ engine: trajectory.routing, trainer, startPosition: trajectory.promptIds.length - 1 });
    }
  });
  const routing = pairs.length === 0 ? undefined : routingMismatch(pairs);
  const flags = tokensWithFlippedRouting(trajectories, free.routing, free.sequenceOffsets);
  const keep = lossMask ?? new Uint8Array(flags.length).fill(1);
  for (let t = 0; t < flags.length; t++) flags[t] = flags[t]! & keep[t]!;
  const freeSplit = k3Sums(free.logprobs, engineLogprobs, flags, keep);
  const replaySplit = replay === undefined ? undefined : k3Sums(replay.logprobs, engineLogprobs, flags, keep);
  let flipped = 0;
  let kept = 0;
  for (let t = 0; t < flags.length; t++) {
    flipped += flags[t]!;
    kept += keep[t]!;
  }
  return {
    klFree: freeMismatch.k3Kl,
    klReplay: replayMismatch?.k3Kl ?? Number.NaN,
    extremeTokenFractionFree: freeMismatch.extremeTokenFraction,
    extremeTokenFractionReplay: replayMismatch?.extremeTokenFraction ?? Number.NaN,
    maxAbsDeltaFree: freeMismatch.maxAbsDelta,
    maxAbsDeltaReplay: replayMismatch?.maxAbsDelta ?? Number.NaN,
    tokenMultProbErrorFree: tokenMultProbError(free.logprobs, engineLogprobs, keep),
    tokenMultProbErrorReplay:
      replay === undefined ? Number.NaN : tokenMultProbError(replay.logprobs, engineLogprobs, keep),
    routingDisagreement: routing === undefined ? [] : Array.from(routing.perLayer),
    tokensWithRoutingDifference: routing === undefined ? Number.NaN : kept === 0 ? 0 : flipped / kept,
    klFreeShareOnFlippedTokens: freeSplit.share,
    klFreeFlipped: freeSplit.flipped,
    klFreeSteady: freeSplit.steady,
    klReplayFlipped: replaySplit?.flipped ?? Number.NaN,
    klReplaySteady: replaySplit?.steady ?? Number.NaN,
    absDeltaHistogramFree: absDeltaHistogram(free.logprobs, engineLogprobs, keep),
    absDeltaHistogramFreeFlipped: absDeltaHistogram(free.logprobs, engineLogprobs, flags),
    absDeltaHistogramReplay:
      replay === undefined ? [] : absDeltaHistogram(replay.logprobs, engineLogprobs, keep),
  };
}
