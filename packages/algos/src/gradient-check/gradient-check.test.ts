import { MoerlError, type Objective } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { createObjective } from '../objectives/objective-registry.js';
import {
  assertGradientMatches,
  checkObjectiveGradient,
  compareGradients,
  finiteDifferenceGradient,
} from './gradient-check.js';

const sequenceOffsets = Int32Array.from([0, 3, 5]);
const logprobs = Float32Array.from([-0.4, -1.3, -0.2, -2.1, -0.8]);

/** loss = −Σ A_t · sg(exp(logp_t)) · logp_t: a stop-gradient factor, as in clipped IS-weight objectives. */
function detachedWeightObjective(
  advantages: readonly number[],
): Objective & { lossAt: (x: Float32Array, at: Float32Array) => number } {
  const lossAt = (x: Float32Array, at: Float32Array) => {
    let loss = 0;
    for (let t = 0; t < x.length; t++) loss -= advantages[t]! * Math.exp(at[t]!) * x[t]!;
    return loss;
  };
  return {
    name: 'detached-weight',
    lossAt,
    evaluate: ({ logprobs: x }) => ({
      loss: lossAt(x, x),
      gradient: Float32Array.from(x, (value, t) => -advantages[t]! * Math.exp(value)),
      metrics: {},
    }),
  };
}

describe('finiteDifferenceGradient', () => {
  it('matches the closed-form gradient of Σ t·sin(x_t)', () => {
    const at = [0.3, -1.2, 2.5, 0];
    const numeric = finiteDifferenceGradient((x) => x.reduce((sum, v, t) => sum + t * Math.sin(v), 0), at);
    at.forEach((x, t) => {
      expect(numeric[t]).toBeCloseTo(t * Math.cos(x), 8);
    });
  });

  it('rejects a non-positive step and non-finite points', () => {
    expect(() => finiteDifferenceGradient(() => 0, [1], 0)).toThrow(/step must be a positive/);
    expect(() => finiteDifferenceGradient(() => 0, [Number.NaN])).toThrow(
      expect.objectContaining({ code: 'NON_FINITE' }),
    );
  });
});

describe('compareGradients', () => {
  it('passes within tolerance and names the worst entry otherwise', () => {
    expect(compareGradients([1, 2, 3], [1, 2, 3 + 1e-7]).ok).toBe(true);
    const bad = compareGradients([1, 2.5, 3], [1, 2, 3], 1e-3);
    expect(bad.ok).toBe(false);
    expect(bad.worstIndex).toBe(1);
    expect(bad.maxError).toBeCloseTo(0.5 / 3, 12);
    expect(bad.message).toContain('gradient[1]');
  });

  it('treats NaN as a failure and refuses arrays of different lengths', () => {
    expect(compareGradients([Number.NaN], [0]).ok).toBe(false);
    expect(() => compareGradients([1, 2], [1])).toThrow(
      expect.objectContaining({
        code: 'INVALID_ARGUMENT',
        details: expect.objectContaining({ field: 'analytic' }),
      }),
    );
  });
});

describe('checkObjectiveGradient', () => {
  it('accepts a built-in objective (grpo) whose gradient is right', () => {
    const objective = createObjective('grpo', {
      batch: {
        sequenceOffsets,
        oldLogprobs: logprobs.map((value, t) => value + 0.05 * (t - 2)),
        advantages: [1, 1, 1, -0.5, -0.5],
      },
    });
    const report = checkObjectiveGradient(objective, { logprobs, sequenceOffsets });
    expect(report.ok, report.message).toBe(true);
    expect(report.analytic.some((g) => g !== 0)).toBe(true);
  });

  it('catches a gradient that is wrong at one token', () => {
    const right = detachedWeightObjective([1, -1, 2, 0.5, -2]);
    const wrong: Objective = {
      name: 'wrong',
      evaluate: (input) => {
        const result = right.evaluate(input);
        const gradient = Float32Array.from(result.gradient);
        gradient[3] = 2 * gradient[3]!;
        return { ...result, gradient };
      },
    };
    const loss = (x: Float32Array) => right.lossAt(x, logprobs);
    expect(checkObjectiveGradient(right, { logprobs, sequenceOffsets }, { loss }).ok).toBe(true);
    const report = checkObjectiveGradient(wrong, { logprobs, sequenceOffsets }, { loss });
    expect(report.ok).toBe(false);
    expect(report.worstIndex).toBe(3);
  });

  it('needs the stop-gradient factors held fixed: the default loss sees them move', () => {
    const objective = detachedWeightObjective([1, -1, 2, 0.5, -2]);
    expect(checkObjectiveGradient(objective, { logprobs, sequenceOffsets }).ok).toBe(false);
    const held = checkObjectiveGradient(
      objective,
      { logprobs, sequenceOffsets },
      { loss: (x) => objective.lossAt(x, logprobs) },
    );
    expect(held.ok, held.message).toBe(true);
  });
});

describe('assertGradientMatches', () => {
  it('throws a MoerlError naming what was checked, and is silent when it passed', () => {
    expect(() => assertGradientMatches(compareGradients([1], [1]))).not.toThrow();
    let caught: unknown;
    try {
      assertGradientMatches(compareGradients([2], [1]), 'cispo gradient');
    } catch (error) {
      caught = error;
    }
    expect(MoerlError.isInstance(caught, 'INVALID_ARGUMENT')).toBe(true);
    expect((caught as Error).message).toMatch(
      /^cispo gradient differs from finite differences: gradient\[0\]/,
    );
  });
});
