import type { TrainStepResult } from '@moerl/core';

/** Keys a trainer adds to `TrainStepResult.metrics` itself; the rest are the objective's. */
const TRAINER_KEYS: ReadonlySet<string> = new Set(['learningRate', 'routerAuxLoss', 'expertLoadImbalance']);

/**
 * What `metrics.jsonl` takes from one RL step's updates (skipped ones excluded): the learning rate of the
 * last applied update, when the trainer reports one, and the mean of every numeric metric the objective
 * returned (NaN values left out of the mean; a key whose values are all NaN gives NaN).
 */
export function updateMetrics(results: readonly TrainStepResult[]): {
  learningRate?: number;
  objective?: Record<string, number>;
} {
  const applied = results.filter((result) => !result.skipped);
  const learningRate = applied.at(-1)?.metrics.learningRate;
  const sums = new Map<string, { sum: number; count: number }>();
  for (const { metrics } of applied) {
    for (const [key, value] of Object.entries(metrics)) {
      if (TRAINER_KEYS.has(key) || typeof value !== 'number') continue;
      const entry = sums.get(key) ?? { sum: 0, count: 0 };
      if (!Number.isNaN(value)) {
        entry.sum += value;
        entry.count++;
      }
      sums.set(key, entry);
    }
  }
  const objective = Object.fromEntries(
    [...sums].map(([key, { sum, count }]) => [key, count === 0 ? Number.NaN : sum / count]),
  );
  return {
    ...(typeof learningRate === 'number' ? { learningRate } : {}),
    ...(sums.size === 0 ? {} : { objective }),
  };
}
