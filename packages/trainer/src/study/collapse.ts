import type { StepMetrics } from '../metrics/step-metrics.js';

/**
 * When a run counts as collapsed. Fixed before any study runs (docs/r3-in-miniature.md states the same):
 * - `accuracy`: the last held-out accuracy is at least `accuracyDrop` below the policy RL started from
 *   (it fell and did not recover by the end);
 * - `reward`: the rollout reward (a `smoothing`-step moving average) fell to half its running peak or
 *   less within `rewardWindow` steps of that peak, and is still at or below half the peak at the end;
 * - `skipped`: more than half of the update steps were skipped as non-finite (divergence).
 */
export interface CollapseCriteria {
  readonly accuracyDrop: number;
  readonly rewardWindow: number;
  readonly smoothing: number;
  /** A peak below this is too small for "half of it" to mean anything. */
  readonly minimumPeakReward: number;
}

export const DEFAULT_COLLAPSE_CRITERIA: CollapseCriteria = {
  accuracyDrop: 0.1,
  rewardWindow: 10,
  smoothing: 3,
  minimumPeakReward: 0.1,
};

export interface CollapseVerdict {
  readonly collapsed: boolean;
  /** Which criteria fired, in words (empty when none did). */
  readonly reasons: readonly string[];
  /** The first step at which a firing criterion was met (NaN when none). */
  readonly step: number;
}

function movingAverage(values: readonly number[], window: number): number[] {
  return values.map((_, index) => {
    const from = Math.max(0, index - window + 1);
    const slice = values.slice(from, index + 1).filter(Number.isFinite);
    return slice.length === 0 ? Number.NaN : slice.reduce((sum, value) => sum + value, 0) / slice.length;
  });
}

/** Applies `criteria` to one run's metrics rows and the held-out accuracy it started from. */
export function detectCollapse(
  rows: readonly StepMetrics[],
  initialEvalAccuracy: number,
  criteria: CollapseCriteria = DEFAULT_COLLAPSE_CRITERIA,
  /** Optimizer updates per RL step (mini-batches × epochs), to read `skippedSteps` against. */
  updatesPerStep = 1,
): CollapseVerdict {
  const reasons: string[] = [];
  let step = Number.NaN;
  const firstAt = (at: number) => {
    step = Number.isNaN(step) ? at : Math.min(step, at);
  };

  const evals = rows.filter((row) => row.evalAccuracy !== undefined && Number.isFinite(row.evalAccuracy));
  const last = evals.at(-1);
  if (last !== undefined && Number.isFinite(initialEvalAccuracy)) {
    const threshold = initialEvalAccuracy - criteria.accuracyDrop;
    if (last.evalAccuracy! <= threshold + 1e-12) {
      const firstBelow = evals.find((row) => row.evalAccuracy! <= threshold + 1e-12)!;
      reasons.push(
        `held-out accuracy ${last.evalAccuracy!.toFixed(3)} at the end, ≥ ${criteria.accuracyDrop} below ${initialEvalAccuracy.toFixed(3)} at the start`,
      );
      firstAt(firstBelow.step);
    }
  }

  const smoothed = movingAverage(
    rows.map((row) => row.rewardMean),
    criteria.smoothing,
  );
  let peak = Number.NEGATIVE_INFINITY;
  let peakIndex = -1;
  let dropIndex = -1;
  smoothed.forEach((value, index) => {
    if (!Number.isFinite(value)) return;
    if (value > peak) {
      peak = value;
      peakIndex = index;
    }
    if (
      dropIndex < 0 &&
      peak >= criteria.minimumPeakReward &&
      value <= peak / 2 &&
      index - peakIndex <= criteria.rewardWindow
    ) {
      dropIndex = index;
    }
  });
  const end = smoothed.at(-1);
  if (dropIndex >= 0 && end !== undefined && end <= peak / 2) {
    reasons.push(
      `rollout reward fell from a peak of ${peak.toFixed(3)} (step ${rows[peakIndex]!.step}) to ${smoothed[dropIndex]!.toFixed(3)} by step ${rows[dropIndex]!.step} and ended at ${end.toFixed(3)}`,
    );
    firstAt(rows[dropIndex]!.step);
  }

  const skipped = rows.at(-1)?.skippedSteps ?? 0;
  if (rows.length > 0 && skipped > (rows.length * updatesPerStep) / 2) {
    reasons.push(`${skipped} update steps skipped as non-finite`);
    firstAt(rows.at(-1)!.step);
  }
  return { collapsed: reasons.length > 0, reasons, step };
}
