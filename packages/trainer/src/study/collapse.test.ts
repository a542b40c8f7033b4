import { describe, expect, it } from 'vitest';
import type { StepMetrics } from '../metrics/step-metrics.js';
import { detectCollapse } from './collapse.js';

/** Rows with the given rewards, held-out accuracy every `every` steps from `accuracies`. */
function series(rewards: number[], accuracies: number[] = [], every = 5, skippedSteps = 0): StepMetrics[] {
  return rewards.map((rewardMean, index) => {
    const step = index + 1;
    const evalIndex = step % every === 0 ? step / every - 1 : -1;
    return {
      step,
      rewardMean,
      skippedSteps,
      ...(evalIndex >= 0 && evalIndex < accuracies.length ? { evalAccuracy: accuracies[evalIndex]! } : {}),
    } as StepMetrics;
  });
}

describe('detectCollapse', () => {
  it('a run that improves, or wobbles and recovers, has not collapsed', () => {
    const rising = series([0.3, 0.35, 0.4, 0.42, 0.45, 0.5, 0.52, 0.55, 0.6, 0.6], [0.35, 0.5]);
    expect(detectCollapse(rising, 0.3)).toEqual({ collapsed: false, reasons: [], step: Number.NaN });
    // Reward halves for a while but comes back: not a collapse.
    const dip = series([0.6, 0.6, 0.6, 0.2, 0.1, 0.1, 0.2, 0.5, 0.6, 0.6, 0.6, 0.6]);
    expect(detectCollapse(dip, Number.NaN).collapsed).toBe(false);
  });

  it('held-out accuracy ending 10 points or more below the start is a collapse, from the first such eval', () => {
    const rows = series(Array(20).fill(0.5), [0.45, 0.3, 0.35, 0.32]);
    const verdict = detectCollapse(rows, 0.45);
    expect(verdict.collapsed).toBe(true);
    expect(verdict.step).toBe(10);
    expect(verdict.reasons[0]).toContain('held-out accuracy 0.320');
    // 9 points below is not.
    expect(detectCollapse(series(Array(20).fill(0.5), [0.4, 0.36]), 0.45).collapsed).toBe(false);
  });

  it('reward halving within 10 steps of its peak and staying down is a collapse', () => {
    const rewards = [0.4, 0.5, 0.6, 0.6, 0.6, 0.5, 0.3, 0.1, 0.05, 0.05, 0.05, 0.05];
    const verdict = detectCollapse(series(rewards), Number.NaN);
    expect(verdict.collapsed).toBe(true);
    expect(verdict.reasons[0]).toMatch(/rollout reward fell from a peak of 0\.600/);
    // The smoothed reward (3-step mean) first reaches ≤ 0.3 at step 8: (0.3 + 0.1 + 0.05) / 3 = 0.15.
    expect(verdict.step).toBe(8);
  });

  it('a slow decline over more than 10 steps is not a reward collapse; a tiny peak never is', () => {
    const slow = Array.from({ length: 40 }, (_, index) => 0.6 - index * 0.012);
    expect(detectCollapse(series(slow), Number.NaN).collapsed).toBe(false);
    expect(detectCollapse(series([0.05, 0.08, 0.02, 0.0, 0.0, 0.0]), Number.NaN).collapsed).toBe(false);
  });

  it('more than half of the updates skipped as non-finite is a collapse', () => {
    expect(detectCollapse(series([0.5, 0.5, 0.5, 0.5], [], 5, 5), Number.NaN, undefined, 2).collapsed).toBe(
      true,
    );
    expect(detectCollapse(series([0.5, 0.5, 0.5, 0.5], [], 5, 4), Number.NaN, undefined, 2).collapsed).toBe(
      false,
    );
  });
});
