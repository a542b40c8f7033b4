import { describe, expect, it } from 'vitest';
import { MoerlError } from '../errors/moerl-error.js';
import { float32Tensor, type NamedTensors } from '../tensors/tensor.js';
import { createModelConfig } from './model-config.js';
import { validateWeights } from './validate-weights.js';
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
