import { describe, it } from 'vitest';
import { expectMoerlError } from '../__fixtures__/random-batch.js';
import { gspoLoss } from './gspo-loss.js';
import { gspoTokenLoss } from './gspo-token-loss.js';
import { importanceWeights } from './importance-sampling.js';
import { applyKlPenalty, klLoss } from './kl-estimators.js';
import { aggregationWeights } from './loss-aggregation.js';
import { ppoClipLoss } from './ppo-clip-loss.js';

const inputs = {
  sequenceOffsets: [0, 2, 3],
  logprobs: [-1, -1, -1],
  oldLogprobs: [-1, -1, -1],
  advantages: [1, 1, 1],
  mask: [1, 1, 1],
  lossWeights: [1, 1, 1],
};
const ppo = { clipRatioLow: 0.2, clipRatioHigh: 0.2, dualClip: true, clipRatioC: 3 };
const gspo = { clipRatioLow: 3e-4, clipRatioHigh: 4e-4 };

describe('low-level functions check shapes and name the field', () => {
  it('policy losses', () => {
    for (const field of ['logprobs', 'oldLogprobs', 'advantages', 'mask', 'lossWeights'] as const) {
      const bad = { ...inputs, [field]: [1, 1] };
      expectMoerlError(() => ppoClipLoss(bad, ppo), 'INVALID_ARGUMENT', field);
      expectMoerlError(() => gspoLoss(bad, gspo), 'INVALID_ARGUMENT', field);
      expectMoerlError(() => gspoTokenLoss(bad, gspo), 'INVALID_ARGUMENT', field);
    }
    expectMoerlError(() => gspoTokenLoss(inputs, gspo, [0]), 'INVALID_ARGUMENT', 'stopGradientLogprobs');
    expectMoerlError(
      () => ppoClipLoss({ ...inputs, sequenceOffsets: [0, 2] }, ppo),
      'INVALID_ARGUMENT',
      'logprobs',
    );
  });

  it('KL, importance weights and aggregation', () => {
    expectMoerlError(() => klLoss([0, 0], [0], [1, 1], 'k3'), 'INVALID_ARGUMENT', 'refLogprobs');
    expectMoerlError(() => klLoss([0, 0], [0, 0], [1], 'k3'), 'INVALID_ARGUMENT', 'weights');
    expectMoerlError(() => applyKlPenalty([0, 0], [0], [0, 0], 0.1), 'INVALID_ARGUMENT', 'logprobs');
    expectMoerlError(
      () => importanceWeights([0, 2], [0, 0], [0], [1, 1]),
      'INVALID_ARGUMENT',
      'engineLogprobs',
    );
    expectMoerlError(() => importanceWeights([0, 2], [0, 0], [0, 0], [1]), 'INVALID_ARGUMENT', 'mask');
    expectMoerlError(() => aggregationWeights([0, 2], [1], 'token-mean'), 'INVALID_ARGUMENT', 'mask');
    expectMoerlError(
      () => aggregationWeights([2], undefined, 'token-mean'),
      'INVALID_ARGUMENT',
      'sequenceOffsets',
    );
  });
});
