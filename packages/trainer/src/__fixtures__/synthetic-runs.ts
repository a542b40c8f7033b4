import { createRandom } from '@moerl/core';
import type { RunRecord, StepMetrics } from '../metrics/step-metrics.js';

/** Token counts per |Δlogp| decade bin (0, 1e-6, …, 10) of one step, before noise. */
const FREE_HISTOGRAM = [40, 2, 6, 20, 50, 50, 25, 6, 1];
const FREE_FLIPPED_HISTOGRAM = [0, 0, 0, 1, 4, 10, 12, 5, 1];
const REPLAY_HISTOGRAM = [120, 10, 20, 30, 15, 5, 0, 0, 0];

export interface SyntheticRunOptions {
  /**
   * Include the newer mismatch metrics (KL on flipped / steady tokens, max |Δlogp|, |Δlogp| histograms) and
   * the held-out accuracy before RL. Default true; false gives a run as older versions recorded it.
   */
  readonly mismatchDetail?: boolean;
  /** Add the per-turn figures of a multi-turn task (turns, tool calls, tokens per turn, cache reuse). Default false. */
  readonly conversations?: boolean;
}

/** Plausible-looking metrics for report tests: free routing drifts, replay stays close. */
export function syntheticRun(
  name: string,
  replay: boolean,
  steps = 12,
  seed = 1,
  options: SyntheticRunOptions = {},
): RunRecord {
  const detail = options.mismatchDetail ?? true;
  const random = createRandom(seed);
  const metrics: StepMetrics[] = [];
  for (let step = 1; step <= steps; step++) {
    const noise = () => 1 + 0.1 * random.nextNormal();
    const counts = (base: readonly number[]) => base.map((count) => Math.round(count * noise()));
    const disagreement = [0.02, 0.03, 0.05].map((base) => base * noise());
    const free = counts(FREE_HISTOGRAM);
    const flipped = counts(FREE_FLIPPED_HISTOGRAM).map((count, bin) => Math.min(count, free[bin]!));
    const replayed = counts(REPLAY_HISTOGRAM);
    // Same number of tokens in the free and replayed histograms: they count the same tokens.
    replayed[0]! += free.reduce((a, b) => a + b, 0) - replayed.reduce((a, b) => a + b, 0);
    metrics.push({
      step,
      rewardMean: Math.min(1, 0.1 + 0.05 * step * noise()),
      rewardStd: 0.3,
      accuracy: Math.min(1, 0.08 + 0.05 * step),
      responseLength: 3 + random.nextFloat(),
      loss: 0.1 * noise(),
      clipFraction: 0.02 * noise(),
      gradNorm: 0.5 * noise(),
      skippedSteps: 0,
      klFree: 2e-3 * noise(),
      klReplay: (replay ? 4e-4 : 5e-4) * noise(),
      extremeTokenFractionFree: 0.01 * noise(),
      extremeTokenFractionReplay: 0.001 * noise(),
      routingDisagreement: disagreement,
      tokensWithRoutingDifference: 0.08 * noise(),
      prefixCacheHitRate: 0.4,
      rolloutTokensPerSecond: 900 * noise(),
      trainTokensPerSecond: 300 * noise(),
      rolloutSeconds: 1.5,
      trainSeconds: 2.5,
      ...(step % 4 === 0 ? { evalAccuracy: 0.05 * step } : {}),
      ...(detail
        ? {
            maxAbsDeltaFree: 1.5 * noise(),
            maxAbsDeltaReplay: 0.05 * noise(),
            tokenMultProbErrorFree: 1 + 0.01 * noise(),
            tokenMultProbErrorReplay: 1 + 0.001 * noise(),
            klFreeShareOnFlippedTokens: 0.6 * noise(),
            klFreeFlipped: 1.5e-2 * noise(),
            klFreeSteady: 8e-4 * noise(),
            klReplayFlipped: 6e-4 * noise(),
            klReplaySteady: 4e-4 * noise(),
            absDeltaHistogramFree: free,
            absDeltaHistogramFreeFlipped: flipped,
            absDeltaHistogramReplay: replayed,
          }
        : {}),
      ...(options.conversations === true
        ? {
            turnsPerEpisode: 1 + 0.5 * noise(),
            toolCallsPerEpisode: 0.4 * noise(),
            tokensPerTurn: 5 * noise(),
            observationTokenShare: 0.2 * noise(),
            routingRowsReused: Math.round(400 * noise()),
          }
        : {}),
    });
  }
  return {
    name,
    config: { replay: replay ? 'R3' : 'free', seed, note: '<script>alert(1)</script>' },
    metrics,
    ...(detail ? { initialEvalAccuracy: 0.02 + 0.01 * seed } : {}),
  };
}
