import { describe, expect, it } from 'vitest';
import { fromHfConfig } from './hf-config.js';
import { createModelConfig } from './model-config.js';
import { expectedWeights } from './weight-names.js';

describe('expectedWeights', () => {
  it('lists HF Qwen3-MoE names and [out, in] shapes', () => {
    const config = createModelConfig({
      vocabSize: 10,
      hiddenSize: 8,
      numLayers: 2,
      numAttentionHeads: 2,
      numKeyValueHeads: 1,
      headDim: 6,
      numExperts: 3,
      topK: 2,
      moeIntermediateSize: 5,
      intermediateSize: 7,
      mlpOnlyLayers: [0],
    });
    const byName = new Map(expectedWeights(config).map((weight) => [weight.name, weight.shape]));
    expect(byName.get('model.embed_tokens.weight')).toEqual([10, 8]);
    expect(byName.get('model.layers.0.self_attn.q_proj.weight')).toEqual([12, 8]);
    expect(byName.get('model.layers.0.self_attn.k_proj.weight')).toEqual([6, 8]);
    expect(byName.get('model.layers.0.self_attn.o_proj.weight')).toEqual([8, 12]);
    expect(byName.get('model.layers.0.self_attn.q_norm.weight')).toEqual([6]);
    expect(byName.get('model.layers.0.mlp.gate_proj.weight')).toEqual([7, 8]);
    expect(byName.has('model.layers.0.mlp.gate.weight')).toBe(false);
    expect(byName.get('model.layers.1.mlp.gate.weight')).toEqual([3, 8]);
    expect(byName.get('model.layers.1.mlp.experts.2.down_proj.weight')).toEqual([8, 5]);
    expect(byName.get('lm_head.weight')).toEqual([10, 8]);
    expect(byName.has('model.layers.0.self_attn.q_proj.bias')).toBe(false);
  });

  it('adds biases with attention_bias and drops lm_head when embeddings are tied', () => {
    const config = createModelConfig({
      vocabSize: 10,
      hiddenSize: 8,
      numLayers: 1,
      numAttentionHeads: 2,
      numKeyValueHeads: 2,
      numExperts: 2,
      topK: 1,
      moeIntermediateSize: 4,
      attentionBias: true,
      tieWordEmbeddings: true,
    });
    const names = expectedWeights(config).map((weight) => weight.name);
    expect(names).toContain('model.layers.0.self_attn.o_proj.bias');
    expect(names).not.toContain('lm_head.weight');
  });

  it('counts the parameters of Qwen3-30B-A3B as published (30.5B total)', () => {
    const config = fromHfConfig({
      vocab_size: 151936,
      hidden_size: 2048,
      num_hidden_layers: 48,
      num_attention_heads: 32,
      num_key_value_heads: 4,
      head_dim: 128,
      num_experts: 128,
      num_experts_per_tok: 8,
      moe_intermediate_size: 768,
      intermediate_size: 6144,
      norm_topk_prob: true,
    });
    let total = 0;
    for (const weight of expectedWeights(config)) total += weight.shape.reduce((a, b) => a * b, 1);
    expect(total / 1e9).toBeCloseTo(30.5, 1);
  });
});
