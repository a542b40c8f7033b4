import { assertGradientMatches, checkObjectiveGradient } from '@moerl/algos';
import { describe, expect, it } from 'vitest';
import { cispoLoss } from './cispo-loss.js';
import { CISPO_DEFAULT_CLIP_RATIO_HIGH, createCispoObjective } from './cispo-objective.js';

const batch = {
  sequenceOffsets: Int32Array.from([0, 3, 5]),
  oldLogprobs: Float32Array.from([-1.1, -0.4, -2.3, -0.9, -1.6]),
  advantages: Float32Array.from([0.8, 0.8, 0.8, -1.2, -1.2]),
};
// One ratio above 1 + ε_high (token 0), the rest below.
const logprobs = Float32Array.from([-0.7, -0.5, -2.2, -1.0, -1.5]);

describe('createCispoObjective', () => {
  it("passes @moerl/algos' finite-difference check with the weights held at the evaluation point", () => {
    const objective = createCispoObjective({ batch });
    const input = { logprobs, sequenceOffsets: batch.sequenceOffsets };
    const config = { clipRatioHigh: CISPO_DEFAULT_CLIP_RATIO_HIGH, lossAggMode: 'token-mean' } as const;
    const report = checkObjectiveGradient(objective, input, {
      loss: (x) => cispoLoss({ ...batch, logprobs: x }, config, logprobs).loss,
    });
    expect(() => assertGradientMatches(report, 'cispo gradient')).not.toThrow();
    expect(objective.evaluate(input).metrics.clipFraction).toBeCloseTo(1 / 5, 6);
  });

  it('uses clipRatioHigh and lossAggMode from the options', () => {
    const input = { logprobs, sequenceOffsets: batch.sequenceOffsets };
    const wide = createCispoObjective({ batch, clipRatioHigh: 10 }).evaluate(input);
    expect(wide.metrics.clipFraction).toBe(0);
    const perSequence = createCispoObjective({ batch, lossAggMode: 'seq-mean-token-sum' }).evaluate(input);
    const tokenMean = createCispoObjective({ batch }).evaluate(input);
    // seq-mean-token-sum weighs every token 1/2 instead of 1/5.
    expect(perSequence.gradient[1]! / tokenMean.gradient[1]!).toBeCloseTo(5 / 2, 5);
  });

  it('refuses options it does not implement, and a bad batch at build time', () => {
    expect(() => createCispoObjective({ batch, kl: { coefficient: 0.1, estimator: 'k3' } })).toThrow(
      expect.objectContaining({ code: 'UNSUPPORTED', details: { field: 'kl' } }),
    );
    expect(() => createCispoObjective({ batch: { ...batch, advantages: [1] } })).toThrow(
      /advantages must hold/,
    );
  });
});
