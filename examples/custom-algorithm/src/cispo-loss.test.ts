import {
  compareGradients,
  createObjective,
  finiteDifferenceGradient,
  LOSS_AGG_MODES,
  type LossAggMode,
} from '@moerl/algos';
import { createRandom } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { cispoLoss } from './cispo-loss.js';

/** A ragged batch of random logprobs around the old ones, a fifth of the tokens masked. */
function randomBatch(seed: number) {
  const random = createRandom(seed);
  const lengths = [1, 4, 6, 3, 5];
  const sequenceOffsets = Int32Array.from([
    0,
    ...lengths.map((_, i) => lengths.slice(0, i + 1).reduce((a, b) => a + b)),
  ]);
  const tokens = sequenceOffsets[lengths.length]!;
  const oldLogprobs = Float64Array.from({ length: tokens }, () => -0.1 - 3 * random.nextFloat());
  // Spread ±0.8 so that some ratios exceed 1 + ε_high and are capped, others are not.
  const logprobs = oldLogprobs.map((old) => old + 0.8 * (2 * random.nextFloat() - 1));
  const advantages = Float64Array.from({ length: tokens }, () => 2 * random.nextNormal());
  const responseMask = Uint8Array.from({ length: tokens }, (_, t) =>
    t > 0 && random.nextFloat() < 0.2 ? 0 : 1,
  );
  return { sequenceOffsets, oldLogprobs, logprobs, advantages, responseMask };
}

describe('cispoLoss', () => {
  it('matches a hand-computed batch: capped weight, uncapped weight, negative advantage', () => {
    const result = cispoLoss(
      {
        sequenceOffsets: [0, 2, 3],
        logprobs: [-0.5, -1.2, -2],
        oldLogprobs: [-1, -1, -2],
        advantages: [1, 1, -2],
      },
      { clipRatioHigh: 0.28, lossAggMode: 'token-mean' },
    );
    // Ratios exp(0.5) > 1.28 (capped to 1.28), exp(−0.2), exp(0) = 1; token-mean over 3 tokens.
    const weights = [1.28, Math.exp(-0.2), 1];
    const expectedLoss = -(weights[0]! * 1 * -0.5 + weights[1]! * 1 * -1.2 + weights[2]! * -2 * -2) / 3;
    expect(result.loss).toBeCloseTo(expectedLoss, 12);
    expect(result.gradient[0]).toBeCloseTo(-1.28 / 3, 12);
    expect(result.gradient[1]).toBeCloseTo(-Math.exp(-0.2) / 3, 12);
    expect(result.gradient[2]).toBeCloseTo(2 / 3, 12);
    expect(result.clipFraction).toBeCloseTo(1 / 3, 12);
    expect(result.weightMean).toBeCloseTo((1.28 + Math.exp(-0.2) + 1) / 3, 12);
  });

  for (const lossAggMode of LOSS_AGG_MODES as readonly LossAggMode[]) {
    it(`${lossAggMode}: gradient equals central differences with the weights held fixed`, () => {
      const batch = randomBatch(7);
      const config = { clipRatioHigh: 0.2, lossAggMode };
      const at = batch.logprobs;
      const result = cispoLoss(batch, config);
      expect(result.clipFraction).toBeGreaterThan(0);
      expect(result.clipFraction).toBeLessThan(1);
      const numeric = finiteDifferenceGradient(
        (x) => cispoLoss({ ...batch, logprobs: x }, config, at).loss,
        at,
      );
      const comparison = compareGradients(result.gradient, numeric, 1e-6);
      expect(comparison.ok, comparison.message).toBe(true);
      batch.responseMask.forEach((keep, t) => {
        if (keep === 0) expect(result.gradient[t]).toBe(0);
      });
    });
  }

  it('on-policy (every ratio 1) has the same gradient as GRPO, an independent implementation', () => {
    const { sequenceOffsets, oldLogprobs, advantages, responseMask } = randomBatch(11);
    const cispo = cispoLoss(
      { sequenceOffsets, logprobs: oldLogprobs, oldLogprobs, advantages, responseMask },
      { clipRatioHigh: 0.28, lossAggMode: 'token-mean' },
    );
    const grpo = createObjective('grpo', {
      batch: { sequenceOffsets, oldLogprobs, advantages, responseMask },
    }).evaluate({ logprobs: Float32Array.from(oldLogprobs), sequenceOffsets });
    const comparison = compareGradients(cispo.gradient, grpo.gradient, 1e-6);
    expect(comparison.ok, comparison.message).toBe(true);
  });

  it('keeps the gradient of a token PPO clips away, down-weighted to 1 + ε_high', () => {
    const batch = {
      sequenceOffsets: [0, 1],
      logprobs: [-0.5],
      oldLogprobs: [-1],
      advantages: [2],
    };
    const ppo = createObjective('ppo-clip', { batch, clipRatioHigh: 0.28 }).evaluate({
      logprobs: Float32Array.of(-0.5),
      sequenceOffsets: Int32Array.of(0, 1),
    });
    expect(ppo.gradient[0]).toBe(0);
    const cispo = cispoLoss(batch, { clipRatioHigh: 0.28, lossAggMode: 'token-mean' });
    expect(cispo.gradient[0]).toBeCloseTo(-1.28 * 2, 12);
  });

  it('names the field of a wrong-length, non-finite or out-of-range input', () => {
    const good = { sequenceOffsets: [0, 2], logprobs: [-1, -2], oldLogprobs: [-1, -2], advantages: [1, 1] };
    const config = { clipRatioHigh: 0.2, lossAggMode: 'token-mean' } as const;
    expect(() => cispoLoss({ ...good, advantages: [1] }, config)).toThrow(
      expect.objectContaining({
        code: 'INVALID_ARGUMENT',
        details: expect.objectContaining({ field: 'advantages' }),
      }),
    );
    expect(() => cispoLoss({ ...good, oldLogprobs: [-1, Number.NaN] }, config)).toThrow(
      expect.objectContaining({
        code: 'NON_FINITE',
        details: expect.objectContaining({ field: 'oldLogprobs' }),
      }),
    );
    expect(() => cispoLoss(good, { ...config, clipRatioHigh: 0 })).toThrow(
      /clipRatioHigh must be a positive/,
    );
  });
});
