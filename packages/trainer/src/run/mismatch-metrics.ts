import { logprobMismatch, routingMismatch } from '@moerl/algos';
import type { LogprobResult, RoutingRecord, Trajectory } from '@moerl/core';

export interface MismatchMetrics {
  readonly klFree: number;
  readonly klReplay: number;
  readonly extremeTokenFractionFree: number;
  readonly extremeTokenFractionReplay: number;
  readonly routingDisagreement: number[];
  readonly tokensWithRoutingDifference: number;
}

/**
 * Trainer vs engine on the engine's sampled tokens: logprob mismatch with the trainer routing freely and
 * replaying the engine's routing, and how often the trainer's free routing differs from the engine's.
 * Routing is compared on the positions that produce response tokens (from the last prompt token on).
 */
export function mismatchMetrics(
  trajectories: readonly Trajectory[],
  engineLogprobs: Float32Array,
  free: LogprobResult,
  replay: LogprobResult | undefined,
): MismatchMetrics {
  const freeMismatch = logprobMismatch({
    sequenceOffsets: free.sequenceOffsets,
    trainerLogprobs: free.logprobs,
    engineLogprobs,
  });
  const replayMismatch =
    replay === undefined
      ? undefined
      : logprobMismatch({
          sequenceOffsets: replay.sequenceOffsets,
          trainerLogprobs: replay.logprobs,
          engineLogprobs,
        });
  const pairs: { engine: RoutingRecord; trainer: RoutingRecord; startPosition: number }[] = [];
  trajectories.forEach((trajectory, index) => {
    const trainer = free.routing?.[index];
    if (trajectory.routing !== null && trainer !== undefined && trajectory.routing.moeLayers > 0) {
      pairs.push({ engine: trajectory.routing, trainer, startPosition: trajectory.promptIds.length - 1 });
    }
  });
  const routing = pairs.length === 0 ? undefined : routingMismatch(pairs);
  return {
    klFree: freeMismatch.k3Kl,
    klReplay: replayMismatch?.k3Kl ?? Number.NaN,
    extremeTokenFractionFree: freeMismatch.extremeTokenFraction,
    extremeTokenFractionReplay: replayMismatch?.extremeTokenFraction ?? Number.NaN,
    routingDisagreement: routing === undefined ? [] : Array.from(routing.perLayer),
    tokensWithRoutingDifference: routing?.tokensWithAnyDifference ?? Number.NaN,
  };
}
