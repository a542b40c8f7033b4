import { describe, expect, it } from 'vitest';
import { MoerlError } from '../errors/moerl-error.js';
import { float32Tensor, type NamedTensors } from '../tensors/tensor.js';
import { createModelConfig } from './model-config.js';
import { assertFiniteTensors, validateWeights } from './validate-weights.js';
import { expectedWeights } from './weight-names.js';

const config = createModelConfig({
  vocabSize: 8,
  hiddenSize: 4,
  numLayers: 1,
  numAttentionHeads: 2,
  numKeyValueHeads: 1,
  numExperts: 2,
  topK: 1,
  moeIntermediateSize: 3,
});

function completeWeights(): NamedTensors {
  return new Map(expectedWeights(config).map((spec) => [spec.name, float32Tensor(spec.shape)]));
}

function errorOf(run: () => void): MoerlError {
  try {
    run();
  } catch (error) {
    if (MoerlError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a MoerlError');
}

describe('validateWeights', () => {
  it('accepts exactly the expected weights, in any float dtype by default', () => {
    const weights = completeWeights();
    expect(() => validateWeights(config, weights)).not.toThrow();
    const name = 'model.norm.weight';
    weights.set(name, { dtype: 'BF16', shape: [4], data: new Uint16Array(4) });
    expect(() => validateWeights(config, weights)).not.toThrow();
    expect(errorOf(() => validateWeights(config, weights, { dtypes: ['F32'] })).message).toContain(
      'model.norm.weight: dtype BF16, expected F32',
    );
  });

  it('names every missing, misshapen, short and unexpected weight', () => {
    const weights = completeWeights();
    weights.delete('model.layers.0.mlp.experts.1.up_proj.weight');
    weights.set('model.layers.0.self_attn.k_proj.weight', float32Tensor([4, 4]));
    weights.set('model.norm.weight', { dtype: 'F32', shape: [4], data: new Float32Array(3) });
    weights.set('model.layers.0.self_attn.q_proj.bias', float32Tensor([4]));
    const error = errorOf(() => validateWeights(config, weights, { subject: 'Checkpoint weights' }));
    expect(error.code).toBe('CHECKPOINT_INVALID');
    expect(error.details.problems).toEqual([
      'model.layers.0.self_attn.k_proj.weight: shape [4, 4], expected [2, 4]',
      'model.layers.0.mlp.experts.1.up_proj.weight: missing (expected F32/F16/BF16 [3, 4])',
      'model.norm.weight: 3 values for shape [4]',
      'model.layers.0.self_attn.q_proj.bias: unexpected weight for this config',
    ]);
    expect(error.message.startsWith('Checkpoint weights do not match the config:')).toBe(true);
    expect(error.details).toMatchObject({
      weight: 'model.layers.0.self_attn.k_proj.weight',
      expected: [2, 4],
      found: [4, 4],
    });
  });

  it('rejects something that is not a Map', () => {
    expect(errorOf(() => validateWeights(config, {} as NamedTensors)).code).toBe('CHECKPOINT_INVALID');
  });
});

describe('validateWeights on non-finite values', () => {
  it('names the first NaN or ±Infinity with its tensor and index, in every float dtype', () => {
    const name = 'model.layers.0.mlp.gate.weight';
    const cases = [
      { dtype: 'F32', value: Number.NaN, found: 'NaN' },
      { dtype: 'F32', value: Number.NEGATIVE_INFINITY, found: '-Infinity' },
      { dtype: 'F16', bits: 0x7c00, found: 'Infinity' },
      { dtype: 'F16', bits: 0x7e00, found: 'NaN' },
      { dtype: 'BF16', bits: 0xff80, found: '-Infinity' },
      { dtype: 'BF16', bits: 0x7fc0, found: 'NaN' },
    ] as const;
    for (const entry of cases) {
      const weights = completeWeights();
      const shape = weights.get(name)!.shape;
      const size = shape.reduce((product, size) => product * size, 1);
      if (entry.dtype === 'F32') {
        const data = new Float32Array(size);
        data[5] = entry.value;
        weights.set(name, { dtype: 'F32', shape, data });
      } else {
        const data = new Uint16Array(size);
        data[5] = entry.bits;
        weights.set(name, { dtype: entry.dtype, shape, data });
      }
      const error = errorOf(() => validateWeights(config, weights, { subject: 'Checkpoint weights' }));
      expect(error.code).toBe('NON_FINITE');
      expect(error.message).toBe(
        `Checkpoint weights: ${name} must be finite, found ${entry.found} at index 5 (of ${size}, shape [${shape.join(', ')}])`,
      );
      expect(error.details).toMatchObject({ weight: name, index: 5 });
    }
  });

  it('accepts the largest finite values of each dtype', () => {
    const weights = completeWeights();
    const name = 'model.norm.weight';
    weights.set(name, { dtype: 'F16', shape: [4], data: new Uint16Array([0x7bff, 0xfbff, 0, 1]) });
    weights.set('model.embed_tokens.weight', {
      dtype: 'BF16',
      shape: weights.get('model.embed_tokens.weight')!.shape,
      data: new Uint16Array(32).fill(0x7f7f),
    });
    expect(() => validateWeights(config, weights)).not.toThrow();
  });
});

describe('assertFiniteTensors', () => {
  it('checks any named float tensors and skips integer ones', () => {
    const tensors: NamedTensors = new Map([
      ['ids', { dtype: 'I32', shape: [2], data: Int32Array.of(1, 2) }],
      ['m.weight', float32Tensor([3], Float32Array.of(0, 1, Number.POSITIVE_INFINITY))],
    ]);
    const error = errorOf(() => assertFiniteTensors(tensors, 'optimizer.safetensors'));
    expect(error.code).toBe('NON_FINITE');
    expect(error.message).toBe(
      'optimizer.safetensors: m.weight must be finite, found Infinity at index 2 (of 3, shape [3])',
    );
    tensors.delete('m.weight');
    expect(() => assertFiniteTensors(tensors)).not.toThrow();
  });
});
