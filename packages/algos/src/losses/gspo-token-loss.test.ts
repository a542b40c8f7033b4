import { describe, expect, it } from 'vitest';
import { centralDifferences, expectAllClose, randomBatch } from '../__fixtures__/random-batch.js';
import { gspoLoss } from './gspo-loss.js';
import { gspoTokenLoss } from './gspo-token-loss.js';
import { aggregationWeights, LOSS_AGG_MODES } from './loss-aggregation.js';

const config = { clipRatioLow: 3e-4, clipRatioHigh: 4e-4 };

function setup(mode: (typeof LOSS_AGG_MODES)[number], tokenAdvantages: boolean) {
  const { batch, logprobs } = randomBatch(8, {
    sequences: 14,
    logRatioScale: 3e-4,
    sequenceShift: 1e-3,
    withMask: true,
    oneTokenSequence: true,
    tokenAdvantages,
  });
  const inputs = {
    sequenceOffsets: batch.sequenceOffsets,
    oldLogprobs: batch.oldLogprobs,
    advantages: batch.advantages,
    mask: batch.responseMask,
    lossWeights: aggregationWeights(batch.sequenceOffsets, batch.responseMask, mode),
  };
  return { inputs, logprobs };
}

describe('gspoTokenLoss', () => {
  for (const mode of LOSS_AGG_MODES) {
    it(`gradient equals central differences with the stop-gradient values held (${mode})`, () => {
      const { inputs, logprobs } = setup(mode, true);
      const result = gspoTokenLoss({ ...inputs, logprobs }, config);
      expect(result.clipFraction).toBeGreaterThan(0);
      expect(result.clipFraction).toBeLessThan(1);
      const numeric = centralDifferences(
        (x) => gspoTokenLoss({ ...inputs, logprobs: x }, config, logprobs).loss,
        logprobs,
        1e-7,
      );
      expectAllClose(result.gradient, numeric, 1e-5);
    });

    it(`equals sequence-level GSPO in value and gradient when a response's tokens share an advantage (${mode})`, () => {
      const { inputs, logprobs } = setup(mode, false);
      const token = gspoTokenLoss({ ...inputs, logprobs }, config);
      const sequence = gspoLoss({ ...inputs, logprobs }, config);
      expect(token.loss).toBeCloseTo(sequence.loss, 12);
      expectAllClose(token.gradient, sequence.gradient, 1e-10);
      expect(token.clipFraction).toBe(sequence.clipFraction);
    });
  }

  it('every token ratio takes the value of its sequence ratio', () => {
    // Two tokens, A = [1, −1], Δ = [2e-4, 0]: both ratios equal exp(1e-4), unclipped, so ℓ = [−s, s].
    const s = Math.exp(1e-4);
    const result = gspoTokenLoss(
      {
        sequenceOffsets: [0, 2],
        logprobs: [-1 + 2e-4, -2],
        oldLogprobs: [-1, -2],
        advantages: [1, -1],
        mask: [1, 1],
        lossWeights: [0.5, 0.5],
      },
      config,
    );
    expect(result.loss).toBeCloseTo(0, 12);
    expectAllClose(result.gradient, [-0.5 * s, 0.5 * s], 1e-12);
  });
});
