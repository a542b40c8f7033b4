import { describe, expect, it } from 'vitest';
import { expectMoerlError } from '../__fixtures__/random-batch.js';
import { logprobMismatch, logprobMismatchMetrics } from './logprob-mismatch.js';

// Two responses [2 tokens, 1 token]; Δ = trainer − engine = [0.5, 0, −1].
const input = {
  sequenceOffsets: [0, 2, 3],
  trainerLogprobs: [-1, -2, -1.5],
  engineLogprobs: [-1.5, -2, -0.5],
};
const k3 = [Math.exp(0.5) - 0.5 - 1, 0, Math.exp(-1) + 1 - 1];

describe('logprobMismatch', () => {
  it('matches hand-computed k3 KL, its max, and the extreme-token fractions', () => {
    const result = logprobMismatch(input, { positionBucketSize: 1 });
    expect(result.tokens).toBe(3);
    expect(result.k3Kl).toBeCloseTo((k3[0]! + k3[2]!) / 3, 14);
    expect(result.k3KlMax).toBeCloseTo(k3[2]!, 14);
    expect(result.k1Kl).toBeCloseTo(0.5 / 3, 14);
    expect(result.meanAbsDelta).toBeCloseTo(0.5, 14);
    expect(result.maxAbsDelta).toBe(1);
    // Only |−1| > ln 2: one token of three, in one response of two.
    expect(result.extremeTokenFraction).toBeCloseTo(1 / 3, 14);
    expect(result.extremeSequenceFraction).toBe(0.5);
    // Position 0 holds tokens 0 and 2; position 1 holds token 1.
    expect(Array.from(result.byPosition.tokens)).toEqual([2, 1]);
    expect(result.byPosition.meanAbsDelta[0]).toBeCloseTo(0.75, 14);
    expect(result.byPosition.maxAbsDelta[0]).toBe(1);
    expect(result.byPosition.k3Kl[0]).toBeCloseTo((k3[0]! + k3[2]!) / 2, 14);
    expect(result.byPosition.extremeTokenFraction[0]).toBe(0.5);
    expect(result.byPosition.extremeTokenFraction[1]).toBe(0);
    expect(logprobMismatchMetrics(result)).toMatchObject({
      mismatchK3Kl: result.k3Kl,
      extremeTokenFraction: 1 / 3,
    });
  });

  it('measures unmasked tokens only', () => {
    const result = logprobMismatch({ ...input, responseMask: [1, 1, 0] });
    expect(result.tokens).toBe(2);
    expect(result.extremeTokenFraction).toBe(0);
    expect(result.extremeSequenceFraction).toBe(0);
    expect(result.k3Kl).toBeCloseTo(k3[0]! / 2, 14);
  });

  it('names bad inputs', () => {
    expectMoerlError(
      () => logprobMismatch({ ...input, engineLogprobs: [0, 0] }),
      'INVALID_ARGUMENT',
      'engineLogprobs',
    );
    expectMoerlError(
      () => logprobMismatch({ ...input, trainerLogprobs: [0, Number.NaN, 0] }),
      'NON_FINITE',
      'trainerLogprobs',
    );
    expectMoerlError(
      () => logprobMismatch({ ...input, responseMask: [0, 0, 0] }),
      'INVALID_ARGUMENT',
      'responseMask',
    );
  });
});
