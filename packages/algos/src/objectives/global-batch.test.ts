import { describe, expect, it } from 'vitest';
import { expectAllClose, expectMoerlError, randomBatch } from '../__fixtures__/random-batch.js';
import { aggregationWeights, globalBatchOf, LOSS_AGG_MODES } from '../losses/loss-aggregation.js';
import { type PolicyBatch, type PolicyLossName, preparePolicyObjective } from './policy-objective.js';

/** Responses [from, to) of a batch as a batch of their own (offsets rebased to 0). */
function slice(batch: ReturnType<typeof randomBatch>['batch'], from: number, to: number) {
  const start = batch.sequenceOffsets[from]!;
  const end = batch.sequenceOffsets[to]!;
  const offsets = Int32Array.from(batch.sequenceOffsets.subarray(from, to + 1), (o) => o - start);
  const part: PolicyBatch = {
    sequenceOffsets: offsets,
    oldLogprobs: batch.oldLogprobs.subarray(start, end),
    advantages: batch.advantages.subarray(start, end),
    responseMask: batch.responseMask.subarray(start, end),
    refLogprobs: batch.refLogprobs.subarray(start, end),
  };
  return { part, start, end };
}

describe('global-batch normalisation: one batch vs k micro-batches', () => {
  const algorithms: PolicyLossName[] = ['ppo-clip', 'gspo', 'sapo', 'cispo'];
  for (const algorithm of algorithms) {
    for (const lossAggMode of LOSS_AGG_MODES) {
      it(`${algorithm}, ${lossAggMode}: the micro-batch losses and gradients add up to the whole batch's`, () => {
        const { batch, logprobs } = randomBatch(90, { sequences: 9, withMask: true, logRatioScale: 0.3 });
        const config = {
          lossAggMode,
          lossScaleFactor: 12,
          kl: { coefficient: 0.1, estimator: 'k3' as const },
        };
        const whole = preparePolicyObjective(algorithm, batch, config).evaluate(logprobs);
        const globalBatch = globalBatchOf(batch.sequenceOffsets, batch.responseMask);
        const gradient = new Float64Array(logprobs.length);
        let loss = 0;
        // Three uneven micro-batches: 2, 4 and 3 responses.
        for (const [from, to] of [
          [0, 2],
          [2, 6],
          [6, 9],
        ] as const) {
          const { part, start, end } = slice(batch, from, to);
          const result = preparePolicyObjective(algorithm, part, { ...config, globalBatch }).evaluate(
            logprobs.subarray(start, end),
          );
          loss += result.loss;
          gradient.set(result.gradient, start);
        }
        expect(loss).toBeCloseTo(whole.loss, 12);
        expectAllClose(gradient, whole.gradient, 1e-13);
        // Without the global totals the micro-batches normalise by themselves and the sum differs.
        if (lossAggMode !== 'seq-mean-token-sum-norm') {
          const { part, start, end } = slice(batch, 0, 2);
          const local = preparePolicyObjective(algorithm, part, config).evaluate(
            logprobs.subarray(start, end),
          );
          const global = preparePolicyObjective(algorithm, part, { ...config, globalBatch }).evaluate(
            logprobs.subarray(start, end),
          );
          expect(local.loss).not.toBeCloseTo(global.loss, 6);
        }
      });
    }
  }

  it('dpSize multiplies the weights (verl undoes the gradient average over ranks)', () => {
    const offsets = [0, 2, 5];
    const mask = [1, 1, 1, 0, 1];
    expect([
      ...aggregationWeights(offsets, mask, 'token-mean', undefined, { tokens: 8, sequences: 4, dpSize: 2 }),
    ]).toEqual([0.25, 0.25, 0.25, 0, 0.25]);
    expect([
      ...aggregationWeights(offsets, mask, 'seq-mean-token-mean', undefined, { tokens: 8, sequences: 4 }),
    ]).toEqual([0.125, 0.125, 0.125, 0, 0.125]);
    expect(globalBatchOf(offsets, mask)).toEqual({ tokens: 4, sequences: 2 });
  });

  it('refuses totals smaller than the batch and a missing lossScaleFactor for seq-mean-token-sum-norm', () => {
    const offsets = [0, 2, 5];
    expectMoerlError(
      () => aggregationWeights(offsets, undefined, 'token-mean', undefined, { tokens: 3, sequences: 2 }),
      'INVALID_ARGUMENT',
      'globalBatch.tokens',
    );
    expectMoerlError(
      () =>
        aggregationWeights(offsets, undefined, 'seq-mean-token-sum-norm', undefined, {
          tokens: 5,
          sequences: 2,
        }),
      'INVALID_ARGUMENT',
      'lossScaleFactor',
    );
  });
});
