import { createRandom } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { type AdamWStepCoefficients, adamwUpdate, sumOfSquares } from './adamw-kernel.js';

const f = Math.fround;

/** The same update in JavaScript, each operation rounded to float32 by `Math.fround`. */
function froundAdamW(
  weights: Float32Array,
  gradient: Float32Array | undefined,
  m: Float32Array,
  v: Float32Array,
  c: AdamWStepCoefficients,
): Float32Array {
  const next = new Float32Array(weights.length);
  const [b1, b2, ob1, ob2, c1, c2, eps, lr, scale, decay] = [
    c.beta1,
    c.beta2,
    c.oneMinusBeta1,
    c.oneMinusBeta2,
    c.correction1,
    c.correction2,
    c.epsilon,
    c.learningRate,
    c.gradientScale,
    c.weightDecay,
  ].map(f) as number[];
  for (let i = 0; i < weights.length; i++) {
    const g = f((gradient?.[i] ?? 0) * scale!);
    m[i] = f(f(m[i]! * b1!) + f(g * ob1!));
    v[i] = f(f(v[i]! * b2!) + f(f(g * g) * ob2!));
    let update = f(f(m[i]! / c1!) / f(f(Math.sqrt(f(v[i]! / c2!))) + eps!));
    if (decay! > 0) update = f(update + f(weights[i]! * decay!));
    next[i] = f(weights[i]! - f(update * lr!));
  }
  return next;
}

/** The first index where the arrays differ in bits (signed zeros apart; any NaN equals any NaN), or -1. */
function firstDifference(actual: Float32Array, expected: Float32Array): number {
  expect(actual.length).toBe(expected.length);
  return actual.findIndex(
    (x, i) => !Object.is(x, expected[i]) && !(Number.isNaN(x) && Number.isNaN(expected[i])),
  );
}

/** Normal values mixed with the awkward ones: signed zeros, subnormals, huge and tiny magnitudes. */
function values(length: number, seed: number): Float32Array {
  const random = createRandom(seed);
  const special = [0, -0, 1e-40, -3e-42, 3e38, -1e-30, 1, 65504];
  return Float32Array.from({ length }, (_, i) =>
    i % 7 === 3
      ? special[random.nextInt(special.length)]!
      : random.nextNormal() * 10 ** random.nextInt(6) * 1e-3,
  );
}

const step3: AdamWStepCoefficients = {
  beta1: 0.9,
  beta2: 0.999,
  oneMinusBeta1: 1 - 0.9,
  oneMinusBeta2: 1 - 0.999,
  correction1: 1 - 0.9 ** 3,
  correction2: 1 - 0.999 ** 3,
  epsilon: 1e-8,
  learningRate: 3e-4,
  gradientScale: 0.37,
  weightDecay: 0.01,
};

describe('adamwUpdate', () => {
  // Lengths across the kernel's 4-lane vectors and its 16 384-element chunks.
  it.each([1, 3, 4, 5, 16_383, 16_384, 40_001])(
    'gives the bits of per-operation float32 rounding (%i values)',
    (length) => {
      for (const coefficients of [step3, { ...step3, weightDecay: 0, gradientScale: 1 }]) {
        const weights = values(length, length);
        const gradient = values(length, length + 1);
        const [m, v] = [values(length, 2), values(length, 3).map(Math.abs)];
        const [mExpected, vExpected] = [Float32Array.from(m), Float32Array.from(v)];
        const expected = froundAdamW(weights, gradient, mExpected, vExpected, coefficients);
        const next = new Float32Array(length);
        adamwUpdate(weights, gradient, m, v, next, coefficients);
        expect(firstDifference(next, expected)).toBe(-1);
        expect(firstDifference(m, mExpected)).toBe(-1);
        expect(firstDifference(v, vExpected)).toBe(-1);
      }
    },
  );

  it('treats a missing gradient as zeros and may write the new weights over the old', () => {
    const weights = values(1000, 5);
    const [m, v] = [values(1000, 6), values(1000, 7).map(Math.abs)];
    const [mExpected, vExpected] = [Float32Array.from(m), Float32Array.from(v)];
    const expected = froundAdamW(weights, undefined, mExpected, vExpected, step3);
    adamwUpdate(weights, undefined, m, v, weights, step3);
    expect(firstDifference(weights, expected)).toBe(-1);
    expect(firstDifference(m, mExpected)).toBe(-1);
  });
});

describe('sumOfSquares', () => {
  it.each([0, 1, 16_384, 40_001])('adds in float32 from the first element on (%i values)', (length) => {
    const xs = values(length, 11).map((x) => (Math.abs(x) > 1e18 ? 1 : x));
    let expected = 0;
    for (const x of xs) expected = f(expected + f(x * x));
    expect(sumOfSquares(xs)).toBe(expected);
  });
});
