import { describe, expect, it } from 'vitest';
import { expectAllClose, expectMoerlError } from '../__fixtures__/random-batch.js';
import { importanceWeights } from './importance-sampling.js';

const ln = Math.log;

describe('importanceWeights', () => {
  it('token-level TIS truncates exp(old − engine) at C', () => {
    const result = importanceWeights([0, 3], [ln(3), ln(0.5), 0], [0, 0, 0], [1, 1, 1], { threshold: 2 });
    expectAllClose(result.weights, [2, 0.5, 1], 1e-14);
    expect(Array.from(result.keepMask)).toEqual([1, 1, 1]);
    expect(result.weightMean).toBeCloseTo(3.5 / 3, 14);
    expect(result.maskedFraction).toBe(0);
  });

  it('token-level MIS drops tokens outside [1/C, C] and keeps the true ratio of the rest', () => {
    const result = importanceWeights(
      [0, 3, 4],
      [ln(3), ln(0.5), ln(0.4), ln(1.5)],
      [0, 0, 0, 0],
      [1, 1, 1, 1],
      {
        mode: 'mask',
        threshold: 2,
      },
    );
    expectAllClose(result.weights, [0, 0.5, 0, 1.5], 1e-14);
    expect(Array.from(result.keepMask)).toEqual([0, 1, 0, 1]);
    expect(result.maskedFraction).toBe(0.5);
    expect(result.sequenceMaskedFraction).toBe(0.5);
  });

  it('sequence level uses the product of the ratios, geometric level their geometric mean', () => {
    const old = [ln(2), ln(2), 0];
    const engine = [0, 0, 0];
    const offsets = [0, 2, 3];
    const sequence = importanceWeights(offsets, old, engine, [1, 1, 1], { level: 'sequence', threshold: 3 });
    expectAllClose(sequence.weights, [3, 3, 1], 1e-14); // product 4, truncated at 3
    const geometric = importanceWeights(offsets, old, engine, [1, 1, 1], {
      level: 'geometric',
      threshold: 3,
    });
    expectAllClose(geometric.weights, [2, 2, 1], 1e-14);
    const masked = importanceWeights(offsets, old, engine, [1, 1, 1], {
      level: 'sequence',
      mode: 'mask',
      threshold: 3,
    });
    expect(Array.from(masked.keepMask)).toEqual([0, 0, 1]);
    expect(masked.sequenceMaskedFraction).toBe(0.5);
  });

  it('ignores masked tokens, in the sequence ratio too', () => {
    const result = importanceWeights([0, 2], [ln(2), ln(100)], [0, 0], [1, 0], {
      level: 'sequence',
      threshold: 3,
    });
    expectAllClose(result.weights, [2, 0], 1e-14);
  });

  it('names a bad threshold', () => {
    expectMoerlError(
      () => importanceWeights([0, 1], [0], [0], [1], { threshold: 0.5 }),
      'INVALID_ARGUMENT',
      'importanceSampling.threshold',
    );
  });
});
