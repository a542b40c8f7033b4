import { createModelConfig, expectedWeights, type HostTensor, type NamedTensors } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { moerlErrorCodeOf as codeOf } from '../conformance/conformance-case.js';
import { tinyBiasedTiedConfig, tinyMoeConfig, tinyTokens } from '../fixtures/tiny-config.js';
import { createReferenceModel } from '../reference/reference-model.js';
import { createRandomWeights } from './random-weights.js';

function values(weights: NamedTensors, name: string): Float32Array {
  const tensor: HostTensor | undefined = weights.get(name);
  if (tensor === undefined || tensor.dtype !== 'F32') throw new Error(`no F32 weight ${name}`);
  return tensor.data;
}

function stats(data: ArrayLike<number>): { mean: number; std: number } {
  let sum = 0;
  for (let index = 0; index < data.length; index++) sum += data[index]!;
  const mean = sum / data.length;
  let squares = 0;
  for (let index = 0; index < data.length; index++) squares += (data[index]! - mean) ** 2;
  return { mean, std: Math.sqrt(squares / data.length) };
}

const bits = (data: Float32Array) => new Uint32Array(data.buffer, data.byteOffset, data.length);

describe('createRandomWeights', () => {
  it('produces exactly the expected weights, in order, as F32 of the right shapes', () => {
    for (const config of [tinyMoeConfig, tinyBiasedTiedConfig]) {
      const weights = createRandomWeights(config, 1);
      const expected = expectedWeights(config);
      expect([...weights.keys()]).toEqual(expected.map((spec) => spec.name));
      for (const spec of expected) {
        const tensor = weights.get(spec.name)!;
        expect(tensor.dtype).toBe('F32');
        expect(tensor.shape).toEqual(spec.shape);
        expect(tensor.data).toHaveLength(spec.shape.reduce((a, b) => a * b, 1));
        expect(Array.from(tensor.data as Float32Array).every(Number.isFinite)).toBe(true);
      }
    }
  });

  it('is deterministic for a seed and differs between seeds', () => {
    const a = createRandomWeights(tinyMoeConfig, 42);
    const b = createRandomWeights(tinyMoeConfig, 42);
    const c = createRandomWeights(tinyMoeConfig, 43);
    for (const name of a.keys()) {
      expect(bits(values(b, name))).toEqual(bits(values(a, name)));
      expect(bits(values(c, name))).not.toEqual(bits(values(a, name)));
    }
  });

  it('draws each tensor from its own fork, so adding tensors leaves the others unchanged', () => {
    const plain = createRandomWeights(tinyMoeConfig, 5);
    const more = createModelConfig({ ...tinyMoeConfig, attentionBias: true, numLayers: 3 });
    const extended = createRandomWeights(more, 5);
    expect(extended.size).toBeGreaterThan(plain.size);
    for (const name of plain.keys()) expect(bits(values(extended, name))).toEqual(bits(values(plain, name)));
  });

  it('scales matrices by 1/√fan_in, keeps norms near one and gives the router a larger scale', () => {
    const config = createModelConfig({
      vocabSize: 256,
      hiddenSize: 64,
      numLayers: 1,
      numAttentionHeads: 4,
      numExperts: 32,
      topK: 2,
      moeIntermediateSize: 128,
      attentionBias: true,
    });
    const weights = createRandomWeights(config, 3);
    // Sample statistics: the relative error of a standard deviation over n values is about 1/√(2n).
    const check = (name: string, mean: number, std: number) => {
      const sample = values(weights, name);
      const s = stats(sample);
      const tolerance = 4 / Math.sqrt(2 * sample.length);
      expect(Math.abs(s.mean - mean)).toBeLessThan(4 * (std / Math.sqrt(sample.length)));
      expect(Math.abs(s.std / std - 1)).toBeLessThan(tolerance);
    };
    check('model.embed_tokens.weight', 0, 1 / 8);
    check('model.layers.0.self_attn.q_proj.weight', 0, 1 / 8);
    check('model.layers.0.mlp.experts.0.down_proj.weight', 0, 1 / Math.sqrt(128));
    check('model.layers.0.mlp.gate.weight', 0, 2 / 8);
    check('model.layers.0.self_attn.o_proj.bias', 0, 0.1);
    const norm = stats(values(weights, 'model.layers.0.input_layernorm.weight'));
    expect(norm.mean).toBeCloseTo(1, 1);
    expect(norm.std).toBeLessThan(0.2);
  });

  it('applies scale, routerScale and normSpread', () => {
    const base = createRandomWeights(tinyMoeConfig, 9);
    const scaled = createRandomWeights(tinyMoeConfig, 9, { scale: 2, routerScale: 4, normSpread: 0 });
    const q = 'model.layers.0.self_attn.q_proj.weight';
    const router = 'model.layers.0.mlp.gate.weight';
    // Same draws, doubled (exact: a power of two).
    expect(Array.from(values(scaled, q))).toEqual(Array.from(values(base, q), (value) => value * 2));
    expect(Array.from(values(scaled, router))).toEqual(
      Array.from(values(base, router), (value) => value * 2),
    );
    expect(Array.from(values(scaled, 'model.norm.weight')).every((value) => value === 1)).toBe(true);
    for (const bad of [
      { scale: -1 },
      { routerScale: Number.NaN },
      { normSpread: Number.POSITIVE_INFINITY },
    ]) {
      expect(codeOf(() => createRandomWeights(tinyMoeConfig, 1, bad))).toBe('INVALID_ARGUMENT');
    }
    expect(codeOf(() => createRandomWeights(tinyMoeConfig, 1.5))).toBe('INVALID_ARGUMENT');
  });

  it('gives non-degenerate routing: several experts used, clear winners', () => {
    const model = createReferenceModel(tinyMoeConfig, createRandomWeights(tinyMoeConfig, 1));
    const { routing, routerProbabilities } = model.forward(tinyTokens);
    const experts = tinyMoeConfig.numExperts;
    for (let layer = 0; layer < routing.moeLayers; layer++) {
      const used = new Set<number>();
      let maxSum = 0;
      for (let position = 0; position < routing.positions; position++) {
        const start = (position * routing.moeLayers + layer) * routing.topK;
        for (const id of routing.experts.subarray(start, start + routing.topK)) used.add(id);
        const row = routerProbabilities.subarray(
          (position * routing.moeLayers + layer) * experts,
          (position * routing.moeLayers + layer + 1) * experts,
        );
        maxSum += Math.max(...row);
      }
      expect(used.size).toBeGreaterThanOrEqual(3);
      expect(maxSum / routing.positions).toBeGreaterThan(0.4); // uniform would be 0.25
    }
  });
});
