import { sliceRoutingRecord } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { moerlErrorCodeOf as codeOf } from '../conformance/conformance-case.js';
import { tinyMoeConfig, tinyTokens } from '../fixtures/tiny-config.js';
import { createRandomWeights } from '../weights/random-weights.js';
import { referenceLogprobs } from './reference-logprobs.js';
import { createReferenceModel } from './reference-model.js';

const bits = (values: Float32Array) => new Uint32Array(values.buffer, values.byteOffset, values.length);

/** log softmax(row / temperature) in float64, written out directly. */
function naiveLogSoftmax(row: ArrayLike<number>, temperature: number): number[] {
  const scaled = Array.from(row, (value) => value / temperature);
  const max = Math.max(...scaled);
  const logSum = max + Math.log(scaled.reduce((sum, value) => sum + Math.exp(value - max), 0));
  return scaled.map((value) => value - logSum);
}

describe('referenceLogprobs', () => {
  const model = createReferenceModel(tinyMoeConfig, createRandomWeights(tinyMoeConfig, 31));
  const vocab = tinyMoeConfig.vocabSize;

  it('scores token t + 1 with the log-softmax of position t, for positions − 1 tokens', () => {
    const { logprobs, logits, routing } = referenceLogprobs(model, tinyTokens, { temperature: 1 });
    expect(logprobs).toHaveLength(tinyTokens.length - 1);
    expect(routing.positions).toBe(tinyTokens.length);
    expect(bits(logits)).toEqual(bits(model.forward(tinyTokens).logits));
    for (let position = 0; position < tinyTokens.length - 1; position++) {
      const row = naiveLogSoftmax(logits.subarray(position * vocab, (position + 1) * vocab), 1);
      // A proper distribution: exp of the log-softmax sums to one over the vocabulary.
      expect(row.reduce((sum, value) => sum + Math.exp(value), 0)).toBeCloseTo(1, 12);
      expect(logprobs[position]).toBeCloseTo(row[tinyTokens[position + 1]!]!, 6);
      expect(logprobs[position]!).toBeLessThan(0);
    }
  });

  it('divides the logits by the temperature', () => {
    const logits = model.forward(tinyTokens).logits;
    for (const temperature of [0.25, 0.7, 1.5, 4]) {
      const { logprobs } = referenceLogprobs(model, tinyTokens, { temperature });
      for (let position = 0; position < tinyTokens.length - 1; position++) {
        const row = naiveLogSoftmax(logits.subarray(position * vocab, (position + 1) * vocab), temperature);
        expect(logprobs[position]).toBeCloseTo(row[tinyTokens[position + 1]!]!, 6);
      }
    }
    const cold = referenceLogprobs(model, tinyTokens, { temperature: 0.5 }).logprobs;
    const hot = referenceLogprobs(model, tinyTokens, { temperature: 2 }).logprobs;
    expect(Array.from(cold)).not.toEqual(Array.from(hot));
  });

  it('returns entropies only when asked; they grow with the temperature towards log(vocab)', () => {
    expect('entropy' in referenceLogprobs(model, tinyTokens, { temperature: 1 })).toBe(false);
    const temperatures = [0.1, 0.5, 1, 2, 1e6];
    const entropies = temperatures.map(
      (temperature) => referenceLogprobs(model, tinyTokens, { temperature, entropy: true }).entropy!,
    );
    for (const entropy of entropies) expect(entropy).toHaveLength(tinyTokens.length - 1);
    for (let position = 0; position < tinyTokens.length - 1; position++) {
      for (let index = 1; index < temperatures.length; index++) {
        expect(entropies[index]![position]!).toBeGreaterThan(entropies[index - 1]![position]!);
      }
      expect(entropies.at(-1)![position]).toBeCloseTo(Math.log(vocab), 5);
    }
    // At temperature 1, entropy = −Σ p log p of the row.
    const { logits } = model.forward(tinyTokens);
    const row = naiveLogSoftmax(logits.subarray(0, vocab), 1);
    expect(entropies[2]![0]).toBeCloseTo(-row.reduce((sum, value) => sum + Math.exp(value) * value, 0), 5);
  });

  it('replays a routing record, bit-for-bit when it is the model’s own', () => {
    const free = referenceLogprobs(model, tinyTokens, { temperature: 0.8 });
    const record = sliceRoutingRecord(free.routing, 0, tinyTokens.length - 1);
    const replayed = referenceLogprobs(model, tinyTokens, { temperature: 0.8, routing: record });
    expect(bits(replayed.logprobs)).toEqual(bits(free.logprobs));
  });

  it('gives no values for a single token and rejects bad temperatures and tokens', () => {
    expect(referenceLogprobs(model, [3], { temperature: 1 }).logprobs).toHaveLength(0);
    for (const temperature of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(codeOf(() => referenceLogprobs(model, tinyTokens, { temperature }))).toBe('INVALID_ARGUMENT');
    }
    expect(codeOf(() => referenceLogprobs(model, [0, vocab], { temperature: 1 }))).toBe('INVALID_ARGUMENT');
  });
});
