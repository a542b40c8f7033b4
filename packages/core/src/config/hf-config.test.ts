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

  it('rejects what it would otherwise approximate, and missing keys', () => {
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
    const { num_experts: _, ...withoutExperts } = minimal;
    expect(code(withoutExperts)).toMatch(/lacks required key\(s\): num_experts/);
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
