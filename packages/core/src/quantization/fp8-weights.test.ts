import { describe, expect, it } from 'vitest';
import { MoerlError } from '../errors/moerl-error.js';
import { roundToBfloat16 } from '../tensors/half-precision.js';
import type { NamedTensors } from '../tensors/tensor.js';
import {
  isFp8QuantizedWeight,
  quantizeE4m3Weight,
  quantizeWeightsFp8,
  resolveFp8WeightOptions,
} from './fp8-weights.js';

describe('quantizeE4m3Weight', () => {
  // [2, 4] in 2×2 blocks. Left tile [[1, 2], [-4, 0.5]]: amax 4, scale 4/448, scaled values 112, 224, -448,
  // 56 are all e4m3 values, so the tile comes back (up to the FP32 scale). Right tile [[3, 0], [0.1, 7]]:
  // amax 7, scale 1/64; 3·64 = 192 and 7·64 = 448 are e4m3 values, 0.1·64 = 6.4 rounds to 6.5 (the
  // spacing is 0.5 in [4, 8)), so 0.1 becomes 6.5/64 = 0.1015625.
  const weight = Float32Array.from([1, 2, 3, 0, -4, 0.5, 0.1, 7]);

  it('block scales: a hand-computed example', () => {
    const { values, scales } = quantizeE4m3Weight(weight, 2, 4, { scheme: 'block', blockSize: 2 });
    expect(Array.from(scales)).toEqual([Math.fround(4 / 448), Math.fround(7 / 448)]);
    const expected = [1, 2, 3, 0, -4, 0.5, 0.1015625, 7];
    values.forEach((value, index) => {
      expect(value).toBeCloseTo(expected[index]!, 6);
    });
    expect(values[6]).toBe(0.1015625);
  });

  it('channel and tensor scales share one scale per row / per weight', () => {
    const channel = quantizeE4m3Weight(weight, 2, 4, { scheme: 'channel', blockSize: 128 });
    expect(Array.from(channel.scales)).toEqual([Math.fround(3 / 448), Math.fround(7 / 448)]);
    const tensor = quantizeE4m3Weight(weight, 2, 4, { scheme: 'tensor', blockSize: 128 });
    expect(Array.from(tensor.scales)).toEqual([Math.fround(7 / 448)]);
    // Row 0 under one scale of 7/448: 1·64 = 64 is exact, 2·64 = 128 too; 0.5·64 = 32 too.
    expect(tensor.values[0]).toBeCloseTo(1, 6);
    // A coarser scale loses more: 0.1 under the row-1 scale is the block result, under amax 7 as well.
    expect(tensor.values[6]).toBe(0.1015625);
  });

  it('never produces a value beyond amax, keeps zeros, and a zero tile keeps scale 1', () => {
    const zeros = quantizeE4m3Weight(new Float32Array(4), 2, 2, { scheme: 'block', blockSize: 128 });
    expect(Array.from(zeros.values)).toEqual([0, 0, 0, 0]);
    expect(Array.from(zeros.scales)).toEqual([1]);
    const random = Float32Array.from({ length: 300 * 260 }, (_, index) => Math.sin(index * 1.7) * 3);
    const { values } = quantizeE4m3Weight(random, 300, 260, { scheme: 'block', blockSize: 128 });
    let worst = 0;
    random.forEach((value, index) => {
      worst = Math.max(worst, Math.abs(values[index]! - value) / Math.max(Math.abs(value), 0.05));
      expect(Number.isFinite(values[index]!)).toBe(true);
    });
    // Three mantissa bits: relative error at most 2^-4 for normal values (subnormals are near zero).
    expect(worst).toBeLessThan(2 ** -4 + 1e-6);
    expect(worst).toBeGreaterThan(0);
  });

  it('refuses values that do not fit the shape', () => {
    expect(() => quantizeE4m3Weight(new Float32Array(3), 2, 2, { scheme: 'tensor', blockSize: 1 })).toThrow(
      MoerlError,
    );
  });
});

describe('which weights FP8 quantises', () => {
  const defaults = resolveFp8WeightOptions();

  it('projections yes; router gate, embeddings, LM head, norms and biases no', () => {
    for (const name of [
      'model.layers.0.self_attn.q_proj.weight',
      'model.layers.11.self_attn.o_proj.weight',
      'model.layers.1.mlp.experts.63.down_proj.weight',
      'model.layers.0.mlp.gate_proj.weight',
    ]) {
      expect(isFp8QuantizedWeight(name, defaults)).toBe(true);
    }
    for (const name of [
      'model.layers.1.mlp.gate.weight',
      'model.embed_tokens.weight',
      'lm_head.weight',
      'model.norm.weight',
      'model.layers.0.input_layernorm.weight',
      'model.layers.0.self_attn.q_norm.weight',
      'model.layers.0.self_attn.q_proj.bias',
    ]) {
      expect(isFp8QuantizedWeight(name, defaults)).toBe(false);
    }
  });

  it('the router gate on request, and the ignore list by module prefix', () => {
    const withGate = resolveFp8WeightOptions({ quantizeRouterGate: true, ignore: ['model.layers.1'] });
    expect(isFp8QuantizedWeight('model.layers.2.mlp.gate.weight', withGate)).toBe(true);
    expect(isFp8QuantizedWeight('model.layers.1.mlp.experts.0.up_proj.weight', withGate)).toBe(false);
    // A prefix matches whole module names only: layers.1 does not cover layers.11.
    expect(isFp8QuantizedWeight('model.layers.11.mlp.experts.0.up_proj.weight', withGate)).toBe(true);
  });

  it('refuses an unknown scheme or block size', () => {
    expect(() => resolveFp8WeightOptions({ scheme: 'row' as never })).toThrow(/fp8.scheme/);
    expect(() => resolveFp8WeightOptions({ blockSize: 0 })).toThrow(/fp8.blockSize/);
  });
});

describe('quantizeWeightsFp8', () => {
  it('fake-quantises projections and rounds the rest to bf16', () => {
    const projection = Float32Array.from({ length: 6 }, (_, index) => 0.123 * (index + 1));
    const gate = Float32Array.from([0.1234567, -0.7654321]);
    const weights: NamedTensors = new Map([
      ['model.layers.0.self_attn.q_proj.weight', { dtype: 'F32', shape: [2, 3], data: projection }],
      ['model.layers.0.mlp.gate.weight', { dtype: 'F32', shape: [1, 2], data: gate }],
    ]);
    const out = quantizeWeightsFp8(weights, { scheme: 'tensor' });
    const expected = quantizeE4m3Weight(projection, 2, 3, { scheme: 'tensor', blockSize: 128 }).values;
    expect(Array.from(out.get('model.layers.0.self_attn.q_proj.weight')!.data as Float32Array)).toEqual(
      Array.from(expected),
    );
    expect(Array.from(out.get('model.layers.0.mlp.gate.weight')!.data as Float32Array)).toEqual(
      Array.from(roundToBfloat16(gate)),
    );
  });
});
