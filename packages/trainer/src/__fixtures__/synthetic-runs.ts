import { createRandom } from '@moerl/core';
import type { RunRecord, StepMetrics } from '../metrics/step-metrics.js';

/** Plausible-looking metrics for report tests: free routing drifts, replay stays close. */
export function syntheticRun(name: string, replay: boolean, steps = 12, seed = 1): RunRecord {
  const random = createRandom(seed);
  const metrics: StepMetrics[] = [];
  for (let step = 1; step <= steps; step++) {
    const noise = () => 1 + 0.1 * random.nextNormal();
    const disagreement = [0.02, 0.03, 0.05].map((base) => base * noise());
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
    });
  }
  return { name, config: { replay: replay ? 'R3' : 'free', note: '<script>alert(1)</script>' }, metrics };
}
