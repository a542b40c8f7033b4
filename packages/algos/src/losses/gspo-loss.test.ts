import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { centralDifferences, expectAllClose, randomBatch } from '../__fixtures__/random-batch.js';
import { gspoLoss } from './gspo-loss.js';
import { aggregationWeights, LOSS_AGG_MODES } from './loss-aggregation.js';
import { ppoClipLoss } from './ppo-clip-loss.js';

const config = { clipRatioLow: 3e-4, clipRatioHigh: 4e-4 };

describe('gspoLoss', () => {
  it('matches a hand-computed sequence ratio and its gradient through the mean', () => {
    // One response of two tokens, A = 1, logp − old = [2e-4, 0]: s = exp(1e-4), inside [1 − 3e-4, 1 + 4e-4].
    const s = Math.exp(1e-4);
    const result = gspoLoss(
      {
        sequenceOffsets: [0, 2],
        logprobs: [-1 + 2e-4, -2],
        oldLogprobs: [-1, -2],
        advantages: [1, 1],
        mask: [1, 1],
        lossWeights: [0.5, 0.5],
      },
      config,
    );
    expect(result.loss).toBeCloseTo(-s, 12);
    // d(−exp(mean(Δ)))/dΔ_t = −s / 2 for each token.
    expectAllClose(result.gradient, [-s / 2, -s / 2], 1e-12);
    expect(result.clipFraction).toBe(0);
  });

  for (const mode of LOSS_AGG_MODES) {
    it(`gradient equals central differences (${mode}, masks, per-token advantages)`, () => {
      const { batch, logprobs } = randomBatch(5, {
        sequences: 14,
        logRatioScale: 3e-4,
        sequenceShift: 1e-3,
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
      const result = gspoLoss({ ...inputs, logprobs }, config);
      expect(result.clipFraction).toBeGreaterThan(0);
      expect(result.clipFraction).toBeLessThan(1);
      const numeric = centralDifferences(
        (x) => gspoLoss({ ...inputs, logprobs: x }, config).loss,
        logprobs,
        1e-7,
      );
      expectAllClose(result.gradient, numeric, 1e-5);
    });
  }

  it('property: with one-token responses GSPO equals token-level PPO with the same clip ranges', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            old: fc.double({ min: -10, max: 0, noNaN: true }),
            delta: fc.double({ min: -2, max: 2, noNaN: true }),
            advantage: fc.double({ min: -3, max: 3, noNaN: true }),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        fc.double({ min: 0, max: 0.9, noNaN: true }),
        fc.double({ min: 0, max: 2, noNaN: true }),
        (tokens, clipRatioLow, clipRatioHigh) => {
          const n = tokens.length;
          const inputs = {
            sequenceOffsets: Array.from({ length: n + 1 }, (_, i) => i),
            logprobs: tokens.map((token) => token.old + token.delta),
            oldLogprobs: tokens.map((token) => token.old),
            advantages: tokens.map((token) => token.advantage),
            mask: tokens.map(() => 1),
            lossWeights: tokens.map(() => 1 / n),
          };
          const gspo = gspoLoss(inputs, { clipRatioLow, clipRatioHigh });
          const ppo = ppoClipLoss(inputs, { clipRatioLow, clipRatioHigh, dualClip: false, clipRatioC: 3 });
          expect(Math.abs(gspo.loss - ppo.loss)).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(ppo.loss)));
          expectAllClose(gspo.gradient, ppo.gradient, 1e-12);
          expect(gspo.clipFraction).toBe(ppo.clipFraction);
        },
      ),
    );
  });
});
