import { createRandom } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { lmHeadGradient, type ScoredPosition, tokenLogprob } from './lm-head-gradient.js';

const vocab = 5;
const hidden = 3;
const random = createRandom(3);
const head = Float64Array.from({ length: vocab * hidden }, () => random.nextNormal());
const inputs = [0, 1, 2].map(() => Float64Array.from({ length: hidden }, () => random.nextNormal()));
const targets = [4, 0, 2];
const gradients = [-0.5, 1.5, 0.25];

const logitsOf = (w: Float64Array, h: Float64Array) =>
  Float64Array.from({ length: vocab }, (_, j) =>
    h.reduce((sum, value, d) => sum + w[j * hidden + d]! * value, 0),
  );

/** Σ_t g_t · logprob_t as a function of the head, computed naively (no max shift). */
function surrogate(w: Float64Array, temperature: number): number {
  return inputs.reduce((sum, h, t) => {
    const z = logitsOf(w, h);
    const normaliser = z.reduce((acc, value) => acc + Math.exp(value / temperature), 0);
    return sum + gradients[t]! * (z[targets[t]!]! / temperature - Math.log(normaliser));
  }, 0);
}

describe('lm head gradient', () => {
  it('tokenLogprob equals the naive log softmax', () => {
    const z = logitsOf(head, inputs[0]!);
    const naive = Math.log(Math.exp(z[2]! / 0.7) / z.reduce((acc, value) => acc + Math.exp(value / 0.7), 0));
    expect(tokenLogprob(z, 2, 0.7)).toBeCloseTo(naive, 12);
  });

  for (const temperature of [1, 0.6]) {
    it(`equals central differences of Σ g·logprob at temperature ${temperature}`, () => {
      const positions: ScoredPosition[] = inputs.map((h, t) => ({
        logits: logitsOf(head, h),
        hidden: h,
        target: targets[t]!,
        gradient: gradients[t]!,
      }));
      const analytic = lmHeadGradient(positions, vocab, hidden, temperature);
      const step = 1e-6;
      for (let i = 0; i < head.length; i++) {
        const plus = Float64Array.from(head);
        const minus = Float64Array.from(head);
        plus[i] = plus[i]! + step;
        minus[i] = minus[i]! - step;
        const numeric = (surrogate(plus, temperature) - surrogate(minus, temperature)) / (2 * step);
        expect(analytic[i]).toBeCloseTo(numeric, 6);
      }
    });
  }
});
