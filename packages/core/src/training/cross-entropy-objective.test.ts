import { describe, expect, it } from 'vitest';
import { crossEntropyObjective } from './cross-entropy-objective.js';

describe('crossEntropyObjective', () => {
  it('is −mean(logprob) with gradient −1/N, matching central differences', () => {
    const logprobs = Float32Array.from([-0.5, -2, -0.25, -1.25]);
    const sequenceOffsets = Int32Array.from([0, 3, 4]);
    const { loss, gradient } = crossEntropyObjective().evaluate({ logprobs, sequenceOffsets });
    expect(loss).toBeCloseTo(1, 12); // (0.5 + 2 + 0.25 + 1.25) / 4
    const step = 1e-3;
    for (let t = 0; t < logprobs.length; t++) {
      const plus = Float32Array.from(logprobs);
      const minus = Float32Array.from(logprobs);
      plus[t]! += step;
      minus[t]! -= step;
      const lossAt = (values: Float32Array) =>
        crossEntropyObjective().evaluate({ logprobs: values, sequenceOffsets }).loss;
      expect(gradient[t]).toBeCloseTo((lossAt(plus) - lossAt(minus)) / (2 * step), 3); // float32 inputs: about 1e-4 of rounding
    }
  });

  it('gives loss 0 and no gradient for an empty batch instead of NaN', () => {
    const result = crossEntropyObjective().evaluate({
      logprobs: new Float32Array(0),
      sequenceOffsets: Int32Array.from([0]),
    });
    expect(result.loss === 0).toBe(true);
    expect(result.gradient).toHaveLength(0);
  });
});
