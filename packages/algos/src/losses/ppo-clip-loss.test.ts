import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { centralDifferences, expectAllClose, randomBatch } from '../__fixtures__/random-batch.js';
import { aggregationWeights, LOSS_AGG_MODES } from './loss-aggregation.js';
import { ppoClipLoss } from './ppo-clip-loss.js';

const config = { clipRatioLow: 0.2, clipRatioHigh: 0.28, dualClip: true, clipRatioC: 2 };

describe('ppoClipLoss', () => {
  it('matches hand-computed token losses and gradients', () => {
    // Four one-token cases, token-mean over 4 tokens (weight 1/4):
    // A = 1, ratio 1.1: unclipped, ℓ = −1.1, ∂ℓ/∂logp = −1.1
    // A = 1, ratio 1.5: clipped at 1.28, ℓ = −1.28, no gradient
    // A = −1, ratio 0.5: clipped at 0.8, ℓ = 0.8, no gradient
    // A = −1, ratio 4: max(4, 1.28) = 4 > c = 2, dual clip: ℓ = 2, no gradient
    const ratios = [1.1, 1.5, 0.5, 4];
    const result = ppoClipLoss(
      {
        sequenceOffsets: [0, 1, 2, 3, 4],
        logprobs: ratios.map(Math.log),
        oldLogprobs: [0, 0, 0, 0],
        advantages: [1, 1, -1, -1],
        mask: [1, 1, 1, 1],
        lossWeights: [0.25, 0.25, 0.25, 0.25],
      },
      config,
    );
    expect(result.loss).toBeCloseTo((-1.1 - 1.28 + 0.8 + 2) / 4, 12);
    expectAllClose(result.gradient, [-1.1 / 4, 0, 0, 0], 1e-12);
    // verl counts a token as clipped when the clipped term is strictly larger: the dual-clipped token's
    // clipped term (1.28) is smaller than its unclipped one (4), so it counts only as lower-clipped.
    expect(result.clipFraction).toBe(0.5);
    expect(result.lowerClipFraction).toBe(0.25);
    expect(result.approxKl).toBeCloseTo(-ratios.reduce((sum, r) => sum + Math.log(r), 0) / 4, 12);
  });

  for (const mode of LOSS_AGG_MODES) {
    it(`gradient equals central differences (${mode}, masks, one-token response)`, () => {
      const { batch, logprobs } = randomBatch(3, {
        sequences: 9,
        logRatioScale: 1.4,
        withMask: true,
        oneTokenSequence: true,
        tokenAdvantages: true,
      });
      const inputs = {
        sequenceOffsets: batch.sequenceOffsets,
        oldLogprobs: batch.oldLogprobs,
        advantages: batch.advantages,
        mask: batch.responseMask,
        lossWeights: aggregationWeights(batch.sequenceOffsets, batch.responseMask, mode),
      };
      const result = ppoClipLoss({ ...inputs, logprobs }, config);
      // The case covers unclipped, clipped and dual-clipped tokens.
      expect(result.clipFraction).toBeGreaterThan(0);
      expect(result.lowerClipFraction).toBeGreaterThan(0);
      expect(result.gradient.some((g) => g !== 0)).toBe(true);
      const numeric = centralDifferences(
        (x) => ppoClipLoss({ ...inputs, logprobs: x }, config).loss,
        logprobs,
      );
      expectAllClose(result.gradient, numeric, 1e-6);
    });
  }

  it('without dual clip, a negative advantage with a large ratio is not capped', () => {
    const inputs = {
      sequenceOffsets: [0, 1],
      logprobs: [Math.log(4)],
      oldLogprobs: [0],
      advantages: [-1],
      mask: [1],
      lossWeights: [1],
    };
    const result = ppoClipLoss(inputs, { ...config, dualClip: false });
    expect(result.loss).toBeCloseTo(4, 12);
    expect(result.gradient[0]).toBeCloseTo(4, 12);
    expect(result.lowerClipFraction).toBe(0);
  });

  it('property: with logp = old every ratio is 1, nothing is clipped, and the loss is −Σ w·A', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.double({ min: -30, max: 0, noNaN: true }), fc.double({ min: -5, max: 5, noNaN: true })),
          {
            minLength: 1,
            maxLength: 20,
          },
        ),
        (tokens) => {
          const old = tokens.map(([logp]) => logp);
          const advantages = tokens.map(([, a]) => a);
          const weight = 1 / tokens.length;
          const result = ppoClipLoss(
            {
              sequenceOffsets: [0, tokens.length],
              logprobs: old,
              oldLogprobs: old,
              advantages,
              mask: tokens.map(() => 1),
              lossWeights: tokens.map(() => weight),
            },
            config,
          );
          expect(result.clipFraction).toBe(0);
          expect(result.lowerClipFraction).toBe(0);
          expect(result.approxKl).toBe(0);
          const expected = -advantages.reduce((sum, a) => sum + a * weight, 0);
          expect(Math.abs(result.loss - expected)).toBeLessThan(1e-12);
        },
      ),
    );
  });
});
