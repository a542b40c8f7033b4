import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRandom, type SeededRandom } from '../random/seeded-random.js';
import { logSoftmax, sampleToken } from './sample-token.js';

/** A second, plain implementation of the same semantics: comparator sort, no packed keys, no fast paths. */
function plainSampleToken(
  logits: number[],
  params: { temperature: number; topK: number; topP: number },
  random: SeededRandom,
): { token: number; logprob: number } {
  const greedy = params.temperature === 0;
  const scaled = logits.map((logit) => logit / (greedy ? 1 : params.temperature));
  const max = Math.max(...scaled);
  const logSumExp = max + Math.log(scaled.reduce((sum, value) => sum + Math.exp(value - max), 0));
  const logprobs = scaled.map((value) => Math.fround(value - logSumExp));
  const order = logprobs.map((_, id) => id).sort((a, b) => logprobs[b]! - logprobs[a]! || a - b);
  if (greedy) return { token: order[0]!, logprob: logprobs[order[0]!]! };
  let candidates = params.topK > 0 ? order.slice(0, params.topK) : order;
  if (params.topP < 1) {
    let mass = 0;
    let keep = 0;
    while (keep < candidates.length && mass < params.topP) mass += Math.exp(logprobs[candidates[keep++]!]!);
    candidates = candidates.slice(0, Math.max(1, keep));
  }
  let total = 0;
  for (const id of candidates) total += Math.exp(logprobs[id]!);
  let threshold = random.nextFloat() * total;
  for (const id of candidates) {
    threshold -= Math.exp(logprobs[id]!);
    if (threshold < 0) return { token: id, logprob: logprobs[id]! };
  }
  return { token: candidates.at(-1)!, logprob: logprobs[candidates.at(-1)!]! };
}

describe('sampleToken', () => {
  it('logprobs are log softmax(logits / T): hand-computed two-token case', () => {
    // logits [0, ln 3] at T = 1: probabilities 1/4 and 3/4.
    const logprobs = logSoftmax([0, Math.log(3)], 1);
    expect(logprobs[0]).toBeCloseTo(Math.log(0.25), 6);
    expect(logprobs[1]).toBeCloseTo(Math.log(0.75), 6);
    // At T = 2 the logits halve: probabilities 1/(1+√3) and √3/(1+√3).
    expect(logSoftmax([0, Math.log(3)], 2)[0]).toBeCloseTo(-Math.log(1 + Math.sqrt(3)), 6);
  });

  it('greedy picks the lowest id among tied maxima and reports the T = 1 logprob', () => {
    const { token, logprob } = sampleToken(
      [1, 3, 3, 0],
      { temperature: 0, topK: 0, topP: 1 },
      createRandom(0),
    );
    expect(token).toBe(1);
    const expected = 3 - Math.log(Math.exp(1) + 2 * Math.exp(3) + 1);
    expect(logprob).toBeCloseTo(expected, 6);
  });

  it('top-k 1 always returns the argmax', () => {
    const random = createRandom(5);
    for (let draw = 0; draw < 20; draw++) {
      expect(sampleToken([0.1, 2, 0.3, 1.9], { temperature: 1.5, topK: 1, topP: 1 }, random).token).toBe(1);
    }
  });

  it('draws the same tokens as a plain implementation for the same seed (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.float({ min: -5, max: 5, noNaN: true }), fc.constantFrom(0, -0, 1, 1)), {
          minLength: 2,
          maxLength: 40,
        }),
        fc.constantFrom(0, 0.5, 1, 1.7),
        fc.integer({ min: 0, max: 5 }),
        fc.constantFrom(1, 0.9, 0.5),
        fc.integer({ min: 0, max: 1000 }),
        (logits, temperature, topK, topP, seed) => {
          const params = { temperature, topK, topP };
          const ours = sampleToken(logits, params, createRandom(seed));
          const theirs = plainSampleToken(logits, params, createRandom(seed));
          expect(ours.token).toBe(theirs.token);
          expect(ours.logprob).toBeCloseTo(theirs.logprob, 5);
        },
      ),
    );
  });

  it('sampling frequencies follow the softmax at the temperature', () => {
    const random = createRandom(9);
    const logits = [0, Math.log(3)];
    let ones = 0;
    const draws = 4000;
    for (let draw = 0; draw < draws; draw++)
      ones += sampleToken(logits, { temperature: 1, topK: 0, topP: 1 }, random).token;
    // Expected 0.75; 4000 draws give a standard error of about 0.007.
    expect(Math.abs(ones / draws - 0.75)).toBeLessThan(0.04);
  });
});
