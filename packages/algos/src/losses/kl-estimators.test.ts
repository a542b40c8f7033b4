import { describe, expect, it } from 'vitest';
import { centralDifferences, expectAllClose, randomBatch } from '../__fixtures__/random-batch.js';
import { applyKlPenalty, KL_ESTIMATORS, type KlEstimator, klLoss, klTerm } from './kl-estimators.js';
import { aggregationWeights } from './loss-aggregation.js';

describe('klTerm', () => {
  it('matches hand values for logp = −1, ref = −1.5', () => {
    expect(klTerm('k1', -1, -1.5)).toEqual([0.5, 1]);
    expect(klTerm('k2', -1, -1.5)).toEqual([0.125, 0.5]);
    const [k3, dk3] = klTerm('k3', -1, -1.5);
    expect(k3).toBeCloseTo(Math.exp(-0.5) + 0.5 - 1, 14);
    expect(dk3).toBeCloseTo(1 - Math.exp(-0.5), 14);
    expect(klTerm('low_var_kl', -1, -1.5)).toEqual(klTerm('k3', -1, -1.5));
    expect(klTerm('kl', -1, -1.5)).toEqual(klTerm('k1', -1, -1.5));
    expect(klTerm('mse', -1, -1.5)).toEqual(klTerm('k2', -1, -1.5));
  });

  it('abs is |logp − ref| with derivative sign(logp − ref)', () => {
    expect(klTerm('abs', -1, -1.5)).toEqual([0.5, 1]);
    expect(klTerm('abs', -2, -1.5)).toEqual([0.5, -1]);
    expect(klTerm('abs', -1, -1)).toEqual([0, 0]);
  });

  it('a + suffix keeps the value and takes the k2 derivative (straight-through)', () => {
    for (const base of ['k1', 'k3', 'abs', 'low_var_kl'] as const) {
      const plus = `${base}+` as KlEstimator;
      expect(klTerm(plus, -1, -1.5)[0]).toBe(klTerm(base, -1, -1.5)[0]);
      expect(klTerm(plus, -1, -1.5)[1]).toBe(0.5);
      // Past k3's clamp the value sticks at 10 but the k2 gradient still flows.
      expect(klTerm(plus, -6, -1)[1]).toBe(-5);
    }
  });

  it('clamps k3 at 10 with no gradient beyond', () => {
    // ref − logp = 5: exp(5) − 5 − 1 ≈ 142 > 10.
    expect(klTerm('k3', -6, -1)).toEqual([10, 0]);
  });

  it('rejects an unknown estimator by field name', () => {
    expect(() => klTerm('k4' as KlEstimator, 0, 0)).toThrow(/kl\.estimator/);
  });
});

describe('klLoss', () => {
  for (const estimator of KL_ESTIMATORS) {
    it(`gradient equals central differences (${estimator})`, () => {
      const { batch, logprobs } = randomBatch(21, { withMask: true, sequences: 6 });
      const weights = aggregationWeights(batch.sequenceOffsets, batch.responseMask, 'seq-mean-token-mean');
      const result = klLoss(logprobs, batch.refLogprobs, weights, estimator);
      // Straight-through estimators differentiate like k2.
      const differentiated = estimator.endsWith('+') ? 'k2' : estimator;
      const numeric = centralDifferences(
        (x) => klLoss(x, batch.refLogprobs, weights, differentiated).kl,
        logprobs,
      );
      expectAllClose(result.gradient, numeric, 1e-6);
      expect(result.gradient.some((g) => g !== 0)).toBe(true);
    });
  }
});

describe('applyKlPenalty', () => {
  it('subtracts coefficient × estimate from each token reward', () => {
    const penalised = applyKlPenalty([1, 0], [-1, -2], [-1.5, -2], 0.1, 'k1');
    expectAllClose(penalised, [1 - 0.05, 0], 1e-14);
  });
});
