import { describe, expect, it } from 'vitest';
import { cispoLoss } from './cispo-loss.js';
import { sapoLoss } from './sapo-loss.js';

// Three tokens, one response, token-mean weights 1/2 on the two loss tokens.
const base = {
  sequenceOffsets: [0, 3],
  oldLogprobs: [-1, -1, -2],
  advantages: [2, -1, 5],
  mask: [1, 1, 0],
  lossWeights: [0.5, 0.5, 0],
};

describe('cispoLoss', () => {
  it('matches a hand-computed case: the weight is clipped but the gradient still flows', () => {
    // Ratios e^0.5 ≈ 1.649 (capped at 1.28) and e^−0.1 ≈ 0.905 (inside).
    const logprobs = [-0.5, -1.1, -2];
    const result = cispoLoss({ ...base, logprobs }, { clipRatioLow: 1, clipRatioHigh: 0.28 });
    const w1 = Math.exp(-0.1);
    expect(result.gradient[0]).toBeCloseTo(-0.5 * 1.28 * 2, 14);
    expect(result.gradient[1]).toBeCloseTo(-0.5 * w1 * -1, 14);
    expect(result.gradient[2]).toBe(0);
    expect(result.loss).toBeCloseTo(-0.5 * 1.28 * 2 * -0.5 + -0.5 * w1 * -1 * -1.1, 14);
    expect(result.clipFraction).toBe(0.5);
    // A lower bound of 1 − 0.05 lifts the second weight to 0.95.
    const lowered = cispoLoss({ ...base, logprobs }, { clipRatioLow: 0.05, clipRatioHigh: 0.28 });
    expect(lowered.gradient[1]).toBeCloseTo(-0.5 * 0.95 * -1, 14);
  });
});

describe('sapoLoss', () => {
  it('matches a hand-computed case', () => {
    const logprobs = [-0.5, -1.1, -2];
    const result = sapoLoss({ ...base, logprobs }, { tauPos: 1, tauNeg: 1.05 });
    const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
    const r0 = Math.exp(0.5);
    const r1 = Math.exp(-0.1);
    const s0 = sigmoid(1 * (r0 - 1));
    const s1 = sigmoid(1.05 * (r1 - 1));
    expect(result.loss).toBeCloseTo(0.5 * (-4 * s0 * 2) + 0.5 * (-(4 / 1.05) * s1 * -1), 14);
    expect(result.gradient[0]).toBeCloseTo(-0.5 * 4 * s0 * (1 - s0) * r0 * 2, 14);
    expect(result.gradient[1]).toBeCloseTo(-0.5 * 4 * s1 * (1 - s1) * r1 * -1, 14);
    expect(result.gradient[2]).toBe(0);
  });

  it('at r = 1 the gradient is the plain policy gradient −w·A', () => {
    const logprobs = [-1, -1, -2];
    const result = sapoLoss({ ...base, logprobs }, { tauPos: 1, tauNeg: 1.05 });
    expect(result.gradient[0]).toBeCloseTo(-0.5 * 2, 14);
    expect(result.gradient[1]).toBeCloseTo(0.5, 14);
    expect(result.clipFraction).toBe(0);
  });
});
