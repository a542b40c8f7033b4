import { createRandom } from '@moerl/core';
import { expect } from 'vitest';
import type { PolicyBatch } from '../objectives/policy-objective.js';

export interface RandomBatchOptions {
  readonly sequences?: number;
  readonly maxLength?: number;
  /** Spread of logp − old per token. */
  readonly logRatioScale?: number;
  /** A shift of logp − old shared by a sequence's tokens, drawn per sequence in ±this. */
  readonly sequenceShift?: number;
  /** Mask out about a fifth of the tokens (never a whole sequence's only token). */
  readonly withMask?: boolean;
  /** Make sequence 0 a one-token response. */
  readonly oneTokenSequence?: boolean;
  /** Per-token advantages instead of one per response. */
  readonly tokenAdvantages?: boolean;
}

export interface RandomBatch {
  readonly batch: PolicyBatch & {
    readonly sequenceOffsets: Int32Array;
    readonly oldLogprobs: Float64Array;
    readonly advantages: Float64Array;
    readonly responseMask: Uint8Array;
    readonly refLogprobs: Float64Array;
    readonly engineLogprobs: Float64Array;
  };
  readonly logprobs: Float64Array;
  readonly entropy: Float64Array;
}

/** A ragged batch of random logprobs around the old ones, with the other inputs a loss reads. */
export function randomBatch(seed: number, options: RandomBatchOptions = {}): RandomBatch {
  const random = createRandom(seed);
  const sequences = options.sequences ?? 5;
  const maxLength = options.maxLength ?? 8;
  const scale = options.logRatioScale ?? 0.5;
  const lengths = Array.from({ length: sequences }, (_, i) =>
    i === 0 && options.oneTokenSequence === true ? 1 : 1 + random.nextInt(maxLength),
  );
  const offsets = new Int32Array(sequences + 1);
  lengths.forEach((length, i) => {
    offsets[i + 1] = offsets[i]! + length;
  });
  const tokens = offsets[sequences]!;
  const old = new Float64Array(tokens);
  const logprobs = new Float64Array(tokens);
  const advantages = new Float64Array(tokens);
  const mask = new Uint8Array(tokens).fill(1);
  const ref = new Float64Array(tokens);
  const engine = new Float64Array(tokens);
  const entropy = new Float64Array(tokens);
  for (let i = 0; i < sequences; i++) {
    const shift = (options.sequenceShift ?? 0) * (2 * random.nextFloat() - 1);
    const sequenceAdvantage = 2 * random.nextNormal();
    for (let t = offsets[i]!; t < offsets[i + 1]!; t++) {
      old[t] = -0.05 - 3 * random.nextFloat();
      logprobs[t] = old[t]! + shift + scale * (2 * random.nextFloat() - 1);
      advantages[t] = options.tokenAdvantages === true ? 2 * random.nextNormal() : sequenceAdvantage;
      ref[t] = old[t]! + 0.6 * (2 * random.nextFloat() - 1);
      engine[t] = old[t]! + 0.9 * (2 * random.nextFloat() - 1);
      entropy[t] = 3 * random.nextFloat();
      if (options.withMask === true && lengths[i]! > 1 && t > offsets[i]! && random.nextFloat() < 0.2)
        mask[t] = 0;
    }
  }
  return {
    batch: {
      sequenceOffsets: offsets,
      oldLogprobs: old,
      advantages,
      responseMask: mask,
      refLogprobs: ref,
      engineLogprobs: engine,
    },
    logprobs,
    entropy,
  };
}

/** Central differences (f(x + h·e_t) − f(x − h·e_t)) / 2h for every coordinate, in float64. */
export function centralDifferences(f: (x: Float64Array) => number, x: Float64Array, h = 1e-6): Float64Array {
  const out = new Float64Array(x.length);
  const probe = Float64Array.from(x);
  for (let t = 0; t < x.length; t++) {
    probe[t] = x[t]! + h;
    const plus = f(probe);
    probe[t] = x[t]! - h;
    const minus = f(probe);
    probe[t] = x[t]!;
    out[t] = (plus - minus) / (2 * h);
  }
  return out;
}

/** Element-wise |a − b| ≤ tolerance · (1 + |b|). */
export function expectAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance = 1e-6,
): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const bound = tolerance * (1 + Math.abs(expected[i]!));
    if (!(Math.abs(actual[i]! - expected[i]!) <= bound)) {
      expect.fail(`index ${i}: ${actual[i]} differs from ${expected[i]} by more than ${bound}`);
    }
  }
}

/** Throws unless `run` throws a MoerlError with `code` whose details name `field`. */
export function expectMoerlError(run: () => unknown, code: string, field: string): void {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected a MoerlError naming ${field}`).toBeDefined();
  expect(caught).toMatchObject({ name: 'MoerlError', code, details: expect.objectContaining({ field }) });
  expect((caught as Error).message).toContain(field);
}
