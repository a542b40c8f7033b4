import { describe, expect, it } from 'vitest';
import { randomBatch } from '../__fixtures__/random-batch.js';
import { aggregateLoss, aggregationWeights, LOSS_AGG_MODES, type LossAggMode } from './loss-aggregation.js';

/** verl's agg_loss written the direct way, over a list of responses. */
function naiveAggregate(losses: number[][], masks: number[][], mode: LossAggMode, scale?: number): number {
  const live = masks.filter((mask) => mask.some((m) => m === 1)).length;
  const sums = losses.map((row, i) => row.reduce((sum, value, t) => sum + value * masks[i]![t]!, 0));
  const counts = masks.map((mask) => mask.reduce((sum, m) => sum + m, 0));
  const total = counts.reduce((a, b) => a + b, 0);
  switch (mode) {
    case 'token-mean':
      return sums.reduce((a, b) => a + b, 0) / total;
    case 'seq-mean-token-sum':
      return sums.reduce((a, b) => a + b, 0) / live;
    case 'seq-mean-token-mean':
      return sums.reduce((a, b, i) => a + (counts[i]! > 0 ? b / counts[i]! : 0), 0) / live;
    case 'seq-mean-token-sum-norm':
      return sums.reduce((a, b) => a + b, 0) / (scale ?? Math.max(...losses.map((row) => row.length)));
  }
}

describe('aggregationWeights', () => {
  for (const mode of LOSS_AGG_MODES) {
    it(`${mode} matches a direct implementation of verl's agg_loss`, () => {
      const { batch, logprobs } = randomBatch(11, { sequences: 7, withMask: true });
      const offsets = batch.sequenceOffsets;
      const losses: number[][] = [];
      const masks: number[][] = [];
      for (let i = 0; i + 1 < offsets.length; i++) {
        losses.push(Array.from(logprobs.subarray(offsets[i], offsets[i + 1])));
        masks.push(Array.from(batch.responseMask.subarray(offsets[i], offsets[i + 1])));
      }
      const weights = aggregationWeights(offsets, batch.responseMask, mode);
      expect(aggregateLoss(logprobs, weights)).toBeCloseTo(naiveAggregate(losses, masks, mode), 12);
      if (mode === 'seq-mean-token-sum-norm') {
        const scaled = aggregationWeights(offsets, batch.responseMask, mode, 4096);
        expect(aggregateLoss(logprobs, scaled)).toBeCloseTo(naiveAggregate(losses, masks, mode, 4096), 12);
      }
    });
  }

  it('leaves fully masked responses out of the response count', () => {
    const weights = aggregationWeights([0, 2, 3], [0, 0, 1], 'seq-mean-token-sum');
    expect(Array.from(weights)).toEqual([0, 0, 1]);
  });

  it('rejects an unknown mode by name', () => {
    expect(() => aggregationWeights([0, 1], undefined, 'sum' as LossAggMode)).toThrow(/lossAggMode/);
  });
});
