import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { moerlErrorCodeOf as codeOf } from '../conformance/conformance-case.js';
import {
  logSoftmax,
  matVec,
  rmsNorm,
  rope,
  ropeInverseFrequencies,
  silu,
  softmax,
  softmaxEntropy,
  topK,
} from './math.js';

const close = (actual: ArrayLike<number>, expected: readonly number[], digits = 6) => {
  expect(actual.length).toBe(expected.length);
  expected.forEach((value, index) => {
    expect(actual[index]).toBeCloseTo(value, digits);
  });
};

describe('matVec', () => {
  it('multiplies a row-major [out, in] matrix by a vector, adding the bias', () => {
    const matrix = [1, 2, 3, 4, 5, 6];
    expect(Array.from(matVec(matrix, 2, 3, [1, 0, -1]))).toEqual([-2, -2]);
    expect(Array.from(matVec(matrix, 2, 3, [1, 0, -1], [0.5, -1]))).toEqual([-1.5, -3]);
    expect(Array.from(matVec(matrix, 3, 2, [1, 1]))).toEqual([3, 7, 11]);
  });

  it('rounds once, to float32, after a float64 accumulation', () => {
    // 1 + 2^-30 - 1 is 2^-30 in float64; float32 step-by-step accumulation would lose it.
    expect(matVec([1, 2 ** -30, -1], 1, 3, [1, 1, 1])[0]).toBe(2 ** -30);
  });

  it('rejects mismatched lengths', () => {
    expect(codeOf(() => matVec([1, 2, 3], 2, 2, [1, 1]))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => matVec([1, 2, 3, 4], 2, 2, [1]))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => matVec([1, 2, 3, 4], 2, 2, [1, 1], [0]))).toBe('INVALID_ARGUMENT');
  });
});

describe('rmsNorm', () => {
  it('divides by the root mean square and multiplies by the weight', () => {
    // mean(9, 16) = 12.5, rms = 3.5355339
    close(rmsNorm([3, 4], [1, 2], 0), [3 / Math.sqrt(12.5), 8 / Math.sqrt(12.5)]);
    close(rmsNorm([3, 4], [1, 2], 0), [0.8485281, 2.2627417]);
  });

  it('adds eps inside the square root', () => {
    close(rmsNorm([1, 1], [1, 1], 3), [0.5, 0.5]);
    expect(Array.from(rmsNorm([0, 0], [1, 1], 1e-6))).toEqual([0, 0]);
  });

  it('makes the mean square one (weight one, negligible eps)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: -100, max: 100, noNaN: true }), { minLength: 1, maxLength: 16 }),
        (values) => {
          fc.pre(values.some((value) => Math.abs(value) > 0.1));
          const out = rmsNorm(values, new Array(values.length).fill(1), 1e-12);
          const meanSquare = out.reduce((sum, value) => sum + value * value, 0) / out.length;
          expect(meanSquare).toBeCloseTo(1, 5);
        },
      ),
    );
  });
});

describe('softmax / logSoftmax / entropy', () => {
  it('matches hand-computed values', () => {
    close(softmax([0, Math.log(2), Math.log(3)]), [1 / 6, 2 / 6, 3 / 6]);
    close(softmax([1000, 1000]), [0.5, 0.5]);
    close(softmax([-1000, 0]), [0, 1]);
    close(logSoftmax([0, Math.log(3)]), [Math.log(1 / 4), Math.log(3 / 4)]);
    // Temperature 2 halves the logits.
    close(logSoftmax([0, 2 * Math.log(3)], 2), [Math.log(1 / 4), Math.log(3 / 4)]);
    expect(softmaxEntropy([5, 5, 5, 5])).toBeCloseTo(Math.log(4), 12);
    expect(softmaxEntropy([0, 1000])).toBeCloseTo(0, 12);
  });

  it('sums to one and agrees with exp(logSoftmax)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -50, max: 50, noNaN: true }), { minLength: 1, maxLength: 20 }),
        (values) => {
          const probabilities = softmax(values);
          const logs = logSoftmax(values);
          expect(probabilities.reduce((sum, value) => sum + value, 0)).toBeCloseTo(1, 5);
          logs.forEach((value, index) => {
            expect(Math.exp(value)).toBeCloseTo(probabilities[index]!, 6);
          });
        },
      ),
    );
  });

  it('rejects a temperature that is not positive and finite', () => {
    for (const temperature of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(codeOf(() => logSoftmax([1, 2], temperature))).toBe('INVALID_ARGUMENT');
      expect(codeOf(() => softmaxEntropy([1, 2], temperature))).toBe('INVALID_ARGUMENT');
    }
  });
});

describe('silu', () => {
  it('is x · sigmoid(x)', () => {
    expect(silu(0)).toBe(0);
    expect(silu(1)).toBeCloseTo(0.7310585786, 9);
    expect(silu(-1)).toBeCloseTo(-0.2689414214, 9);
    expect(silu(2)).toBeCloseTo(1.761594156, 9);
    expect(silu(-50)).toBeCloseTo(0, 12);
    expect(silu(50)).toBeCloseTo(50, 9);
  });
});

describe('topK', () => {
  it('returns the indices of the largest values, largest first', () => {
    expect(topK([0.1, 0.5, 0.2, 0.05], 2)).toEqual([1, 2]);
    expect(topK([3, 1, 2], 3)).toEqual([0, 2, 1]);
    expect(topK([3, 1, 2], 0)).toEqual([]);
  });

  it('breaks ties by the lower index', () => {
    expect(topK([0.1, 0.5, 0.2, 0.5], 2)).toEqual([1, 3]);
    expect(topK([0.1, 0.5, 0.2, 0.5], 1)).toEqual([1]);
    expect(topK([0.25, 0.25, 0.25, 0.25], 3)).toEqual([0, 1, 2]);
  });

  it('agrees with a stable sort by value descending', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 12 }),
        fc.nat(),
        (values, seed) => {
          const k = seed % (values.length + 1);
          const sorted = values.map((_, index) => index).sort((a, b) => values[b]! - values[a]! || a - b);
          expect(topK(values, k)).toEqual(sorted.slice(0, k));
        },
      ),
    );
  });

  it('rejects NaN and a bad k', () => {
    expect(codeOf(() => topK([0.1, Number.NaN], 1))).toBe('NON_FINITE');
    expect(codeOf(() => topK([0.1, 0.2], 3))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => topK([0.1, 0.2], -1))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => topK([0.1, 0.2], 1.5))).toBe('INVALID_ARGUMENT');
  });
});

describe('rope', () => {
  it('computes inverse frequencies 1 / theta^(2i / headDim) in float32', () => {
    expect(Array.from(ropeInverseFrequencies(4, 10_000))).toEqual([1, Math.fround(0.01)]);
    expect(Array.from(ropeInverseFrequencies(8, 10_000))).toEqual([1, 0.1, 0.01, 0.001].map(Math.fround));
    expect(Array.from(ropeInverseFrequencies(2, 500_000))).toEqual([1]);
    expect(codeOf(() => ropeInverseFrequencies(5, 10_000))).toBe('INVALID_ARGUMENT');
  });

  it('is the identity at position 0', () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 4, maxLength: 4 }),
        (values) => {
          const out = rope(values, 0, ropeInverseFrequencies(4, 10_000));
          // === so that a -0 turned into +0 (x - (-0 · 0)) still counts as equal.
          values.forEach((value, index) => {
            expect(out[index] === Math.fround(value)).toBe(true);
          });
        },
      ),
    );
  });

  it('rotates the pairs (i, i + half) in rotate-half style', () => {
    const single = ropeInverseFrequencies(2, 10_000);
    close(rope([1, 0], 1, single), [Math.cos(1), Math.sin(1)]);
    close(rope([0, 1], 1, single), [-Math.sin(1), Math.cos(1)]);
    // headDim 4 at position 2: pair (x0, x2) turns by 2 rad, pair (x1, x3) by 0.02 rad.
    const [c, s, c2, s2] = [Math.cos(2), Math.sin(2), Math.cos(0.02), Math.sin(0.02)];
    close(rope([1, 2, 3, 4], 2, ropeInverseFrequencies(4, 10_000)), [
      1 * c - 3 * s,
      2 * c2 - 4 * s2,
      3 * c + 1 * s,
      4 * c2 + 2 * s2,
    ]);
  });

  it('keeps the norm and makes q·k depend only on the relative position', () => {
    const frequencies = ropeInverseFrequencies(8, 10_000);
    const vector = fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 8, maxLength: 8 });
    const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
      let sum = 0;
      for (let index = 0; index < a.length; index++) sum += a[index]! * b[index]!;
      return sum;
    };
    fc.assert(
      fc.property(
        vector,
        vector,
        fc.integer({ min: 0, max: 50 }),
        fc.integer({ min: 0, max: 50 }),
        (q, k, m, shift) => {
          const rotated = rope(q, m, frequencies);
          expect(dot(rotated, rotated)).toBeCloseTo(dot(q, q), 4);
          const near = dot(rope(q, m + 3, frequencies), rope(k, m, frequencies));
          const far = dot(rope(q, m + shift + 3, frequencies), rope(k, m + shift, frequencies));
          expect(far).toBeCloseTo(near, 3);
        },
      ),
    );
  });
});
