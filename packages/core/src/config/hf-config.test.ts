import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MoerlError } from '../errors/moerl-error.js';
import { fromHfConfig, readHfConfigFile, toHfConfig, writeHfConfigFile } from './hf-config.js';
import { createModelConfig } from './model-config.js';

// The published config.json of Qwen/Qwen3-30B-A3B (the fields moerl reads).
const qwen3_30b_a3b = {
  architectures: ['Qwen3MoeForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 151643,
  decoder_sparse_step: 1,
  eos_token_id: 151645,
  head_dim: 128,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 6144,
  max_position_embeddings: 40960,
  max_window_layers: 48,
  mlp_only_layers: [],
  model_type: 'qwen3_moe',
  moe_intermediate_size: 768,
  norm_topk_prob: true,
  num_attention_heads: 32,
  num_experts: 128,
  num_experts_per_tok: 8,
  num_hidden_layers: 48,
  num_key_value_heads: 4,
  output_router_logits: false,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000.0,
  router_aux_loss_coef: 0.001,
  sliding_window: null,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

const minimal = {
  vocab_size: 64,
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_experts: 8,
  num_experts_per_tok: 2,
  moe_intermediate_size: 16,
};

describe('fromHfConfig', () => {
  it('reads the Qwen3-30B-A3B config, keeping head_dim 128 rather than hidden / heads', () => {
    const config = fromHfConfig(qwen3_30b_a3b);
    expect(config).toMatchObject({
      vocabSize: 151936,
      hiddenSize: 2048,
      numLayers: 48,
      numAttentionHeads: 32,
      numKeyValueHeads: 4,
      headDim: 128,
      numExperts: 128,
      topK: 8,
      moeIntermediateSize: 768,
      intermediateSize: 6144,
      normTopKProb: true,
      ropeTheta: 1_000_000,
      bosTokenId: 151643,
      eosTokenId: 151645,
    });
  });

  it('applies HF defaults for absent keys', () => {
    const config = fromHfConfig(minimal);
    expect(config.normTopKProb).toBe(false);
    expect(config.tieWordEmbeddings).toBe(false);
    expect(config.ropeTheta).toBe(10_000);
    expect(config.numKeyValueHeads).toBe(4);
    expect(config.headDim).toBe(8);
    // HF's dense MLP width, not the expert width.
    expect(config.intermediateSize).toBe(6144);
    expect(config).toMatchObject({
      maxPositionEmbeddings: 32768,
      rmsNormEps: 1e-6,
      decoderSparseStep: 1,
      mlpOnlyLayers: [],
      attentionBias: false,
    });
    // An empty config.json is HF's default Qwen3MoeConfig (hidden 2048, 24 layers, 128 experts, top-8).
    expect(fromHfConfig({})).toMatchObject({
      vocabSize: 151936,
      hiddenSize: 2048,
      numLayers: 24,
      numAttentionHeads: 32,
      headDim: 64,
      numExperts: 128,
      topK: 8,
      moeIntermediateSize: 768,
      intermediateSize: 6144,
    });
    expect(fromHfConfig({ ...minimal, mlp_only_layers: null }).mlpOnlyLayers).toEqual([]);
  });

  it('accepts plain RoPE however it is spelled', () => {
    for (const rope of [
      { rope_scaling: null },
      { rope_scaling: { rope_type: 'default' } },
      { rope_scaling: { type: 'default' } },
      { rope_parameters: { rope_type: 'default', rope_theta: 5e5 } },
      { rope_theta: 5e5, rope_parameters: { rope_type: 'default', rope_theta: 5e5 } },
      { partial_rotary_factor: 1 },
    ]) {
      const config = fromHfConfig({ ...minimal, ...rope });
      expect(config.ropeTheta, JSON.stringify(rope)).toBe('rope_parameters' in rope ? 5e5 : 10_000);
    }
  });

  it('round-trips through toHfConfig', () => {
    const config = createModelConfig({
      vocabSize: 40,
      hiddenSize: 16,
      numLayers: 3,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 6,
      numExperts: 300,
      topK: 3,
      moeIntermediateSize: 5,
      intermediateSize: 7,
      mlpOnlyLayers: [1],
      normTopKProb: true,
      tieWordEmbeddings: true,
      attentionBias: true,
      qkNorm: false,
      eosTokenId: 2,
    });
    expect(fromHfConfig(JSON.parse(JSON.stringify(toHfConfig(config))))).toEqual(config);
  });

  it('rejects what it would otherwise approximate', () => {
    const code = (json: unknown) => {
      try {
        fromHfConfig(json);
        return 'ok';
      } catch (error) {
        return MoerlError.isInstance(error) ? `${error.code}: ${error.message}` : 'other';
      }
    };
    expect(code({ ...minimal, hidden_act: 'gelu' })).toMatch(/CONFIG_INVALID: hidden_act "gelu"/);
    expect(code({ ...minimal, use_sliding_window: true })).toMatch(/CONFIG_INVALID: use_sliding_window/);
    expect(code({ ...minimal, rope_scaling: { type: 'yarn', factor: 4 } })).toMatch(
      /CONFIG_INVALID: rope_scaling/,
    );
    expect(code({ ...minimal, model_type: 'llama' })).toMatch(/model_type "llama"/);
    expect(code({ ...minimal, rope_scaling: { rope_type: 'linear', factor: 2 } })).toBe(
      'CONFIG_INVALID: rope_scaling: expected none or {"rope_type": "default"} (only plain RoPE is computed), found {"rope_type":"linear","factor":2}',
    );
    expect(code({ ...minimal, rope_parameters: { rope_type: 'yarn' } })).toMatch(
      /CONFIG_INVALID: rope_parameters: /,
    );
    expect(
      code({ ...minimal, rope_theta: 1e4, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } }),
    ).toMatch(/rope_theta: the config gives different values \(10000, 1000000\)/);
    expect(code({ ...minimal, partial_rotary_factor: 0.5 })).toBe(
      'CONFIG_INVALID: partial_rotary_factor: expected 1 (RoPE over the whole head), found 0.5; partial rotary embeddings are not supported',
    );
    expect(code({ ...minimal, head_dim: null })).toBe(
      'CONFIG_INVALID: head_dim: expected a positive integer or no key (then hidden_size / num_attention_heads), found null',
    );
    expect(code([1, 2])).toMatch(/must hold a JSON object, found an array/);
    expect(code({ ...minimal, num_experts_per_tok: 9 })).toMatch(
      /topK \(9\) must not exceed numExperts \(8\)/,
    );
  });
});

describe('config.json files', () => {
  it('writes atomically and reads back', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'moerl-config-'));
    const path = join(directory, 'config.json');
    const config = fromHfConfig(minimal);
    await writeHfConfigFile(path, config);
    expect(await readdir(directory)).toEqual(['config.json']);
    expect(JSON.parse(await readFile(path, 'utf8')).num_experts).toBe(8);
    expect(await readHfConfigFile(path)).toEqual(config);
  });

  it('gives CONFIG_INVALID for a missing file or bad JSON', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'moerl-config-'));
    await expect(readHfConfigFile(join(directory, 'absent.json'))).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    });
    await writeFile(join(directory, 'bad.json'), '{"vocab_size": 3,');
    await expect(readHfConfigFile(join(directory, 'bad.json'))).rejects.toThrow(
      /bad\.json is not valid JSON/,
    );
  });
});
