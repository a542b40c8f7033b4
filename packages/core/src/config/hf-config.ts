import { readFile } from 'node:fs/promises';
import { MoerlError } from '../errors/moerl-error.js';
import { writeFileAtomic } from '../io/write-file-atomic.js';
import { createModelConfig, type ModelConfig, type ModelConfigInput } from './model-config.js';

/** The subset of a Hugging Face Qwen3-MoE `config.json` that moerl reads and writes. */
export interface HfQwen3MoeConfigJson {
  architectures?: string[];
  model_type?: string;
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  head_dim?: number;
  num_experts: number;
  num_experts_per_tok: number;
  moe_intermediate_size: number;
  intermediate_size?: number;
  decoder_sparse_step?: number;
  mlp_only_layers?: number[];
  norm_topk_prob?: boolean;
  rope_theta?: number;
  rms_norm_eps?: number;
  tie_word_embeddings?: boolean;
  attention_bias?: boolean;
  max_position_embeddings?: number;
  hidden_act?: string;
  use_sliding_window?: boolean;
  rope_scaling?: unknown;
  bos_token_id?: number | null;
  eos_token_id?: number | number[] | null;
  torch_dtype?: string;
  /** moerl extension, written only when false: Qwen3 always has per-head q/k RMSNorm. */
  qk_norm?: boolean;
  [key: string]: unknown;
}

/**
 * Hugging Face `Qwen3MoeConfig`'s defaults for the keys moerl reads: a config.json without a key means
 * what it means to `Qwen3MoeForCausalLM` (transformers' configuration_qwen3_moe.py).
 */
const HF_DEFAULTS = {
  vocab_size: 151936,
  hidden_size: 2048,
  intermediate_size: 6144,
  num_hidden_layers: 24,
  num_attention_heads: 32,
  num_key_value_heads: 4,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
  rope_theta: 10000,
  attention_bias: false,
  decoder_sparse_step: 1,
  moe_intermediate_size: 768,
  num_experts_per_tok: 8,
  num_experts: 128,
  norm_topk_prob: false,
  mlp_only_layers: [] as number[],
} as const;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** RoPE without scaling, however the config.json spells it: absent, null, or `rope_type: "default"`. */
function plainRope(key: string, value: unknown): { ropeTheta?: unknown } {
  if (value === undefined || value === null) return {};
  const type = isObject(value) ? (value.rope_type ?? value.type) : undefined;
  if (type !== 'default') {
    throw invalid(
      `${key}: expected none or {"rope_type": "default"} (only plain RoPE is computed), found ${JSON.stringify(value)}`,
      { field: key, found: value },
    );
  }
  return isObject(value) && value.rope_theta !== undefined ? { ropeTheta: value.rope_theta } : {};
}

function invalid(message: string, details: Record<string, unknown> = {}): MoerlError {
  return new MoerlError('CONFIG_INVALID', message, { details });
}

/**
 * Maps a Hugging Face Qwen3-MoE config.json object to a validated ModelConfig. Absent keys take the
 * defaults of HF's `Qwen3MoeConfig` (`HF_DEFAULTS`: e.g. `intermediate_size` 6144, `norm_topk_prob` false,
 * `rope_theta` 10000, `num_key_value_heads` 4; `head_dim` = hidden / heads). Variants moerl does not
 * compute (sliding window, RoPE scaling other than `rope_type: "default"`, partial rotary embeddings,
 * activations other than SiLU) are rejected rather than approximated, and so is `head_dim: null`.
 */
export function fromHfConfig(json: unknown): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw invalid(
      `config.json must hold a JSON object, found ${Array.isArray(json) ? 'an array' : typeof json}`,
    );
  }
  const raw = json as Record<string, unknown>;
  if (raw.hidden_act !== undefined && raw.hidden_act !== 'silu') {
    throw invalid(
      `hidden_act "${String(raw.hidden_act)}" is not supported; moerl computes SwiGLU with "silu"`,
    );
  }
  if (raw.use_sliding_window === true) {
    throw invalid('use_sliding_window is true; sliding-window attention is not supported');
  }
  const ropeThetas = [
    plainRope('rope_scaling', raw.rope_scaling),
    plainRope('rope_parameters', raw.rope_parameters),
  ]
    .map((rope) => rope.ropeTheta)
    .filter((theta) => theta !== undefined);
  if (raw.rope_theta !== undefined) ropeThetas.unshift(raw.rope_theta);
  if (new Set(ropeThetas).size > 1) {
    throw invalid(
      `rope_theta: the config gives different values (${ropeThetas.join(', ')}) in rope_theta, rope_scaling and rope_parameters`,
      { field: 'rope_theta', found: ropeThetas },
    );
  }
  if (raw.partial_rotary_factor !== undefined && raw.partial_rotary_factor !== 1) {
    throw invalid(
      `partial_rotary_factor: expected 1 (RoPE over the whole head), found ${JSON.stringify(raw.partial_rotary_factor)}; partial rotary embeddings are not supported`,
      { field: 'partial_rotary_factor', found: raw.partial_rotary_factor },
    );
  }
  if (raw.head_dim === null) {
    throw invalid(
      'head_dim: expected a positive integer or no key (then hidden_size / num_attention_heads), found null',
      { field: 'head_dim', found: null },
    );
  }
  if (raw.model_type !== undefined && raw.model_type !== 'qwen3_moe') {
    throw invalid(`model_type "${String(raw.model_type)}" is not supported; expected "qwen3_moe"`);
  }
  const value = (key: keyof typeof HF_DEFAULTS) =>
    raw[key] === undefined || (key === 'mlp_only_layers' && raw[key] === null) ? HF_DEFAULTS[key] : raw[key];
  const input: { -readonly [K in keyof ModelConfigInput]: unknown } = {
    vocabSize: value('vocab_size'),
    hiddenSize: value('hidden_size'),
    numLayers: value('num_hidden_layers'),
    numAttentionHeads: value('num_attention_heads'),
    numExperts: value('num_experts'),
    topK: value('num_experts_per_tok'),
    moeIntermediateSize: value('moe_intermediate_size'),
    numKeyValueHeads: value('num_key_value_heads'),
    intermediateSize: value('intermediate_size'),
    decoderSparseStep: value('decoder_sparse_step'),
    mlpOnlyLayers: value('mlp_only_layers'),
    normTopKProb: value('norm_topk_prob'),
    ropeTheta: ropeThetas[0] ?? HF_DEFAULTS.rope_theta,
    rmsNormEps: value('rms_norm_eps'),
    tieWordEmbeddings: value('tie_word_embeddings'),
    attentionBias: value('attention_bias'),
    maxPositionEmbeddings: value('max_position_embeddings'),
  };
  const optional: Array<[keyof ModelConfig, string]> = [
    ['headDim', 'head_dim'],
    ['qkNorm', 'qk_norm'],
    ['bosTokenId', 'bos_token_id'],
  ];
  for (const [field, key] of optional) {
    if (raw[key] !== undefined && raw[key] !== null) input[field] = raw[key];
  }
  // HF allows a list of eos ids; moerl's config keeps the first (generation stops on any, see SamplingParams).
  const eos = Array.isArray(raw.eos_token_id) ? raw.eos_token_id[0] : raw.eos_token_id;
  if (eos !== undefined && eos !== null) input.eosTokenId = eos;
  return createModelConfig(input as ModelConfigInput);
}

/** The Hugging Face config.json object for a ModelConfig; `fromHfConfig(toHfConfig(c))` equals `c`. */
export function toHfConfig(config: ModelConfig): HfQwen3MoeConfigJson {
  const json: HfQwen3MoeConfigJson = {
    architectures: ['Qwen3MoeForCausalLM'],
    model_type: 'qwen3_moe',
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numAttentionHeads,
    num_key_value_heads: config.numKeyValueHeads,
    head_dim: config.headDim,
    hidden_act: 'silu',
    max_position_embeddings: config.maxPositionEmbeddings,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    rope_scaling: null,
    tie_word_embeddings: config.tieWordEmbeddings,
    attention_bias: config.attentionBias,
    attention_dropout: 0,
    use_sliding_window: false,
    decoder_sparse_step: config.decoderSparseStep,
    moe_intermediate_size: config.moeIntermediateSize,
    num_experts: config.numExperts,
    num_experts_per_tok: config.topK,
    norm_topk_prob: config.normTopKProb,
    output_router_logits: false,
    router_aux_loss_coef: 0.001,
    mlp_only_layers: [...config.mlpOnlyLayers],
    torch_dtype: 'float32',
  };
  if (config.bosTokenId !== undefined) json.bos_token_id = config.bosTokenId;
  if (config.eosTokenId !== undefined) json.eos_token_id = config.eosTokenId;
  if (!config.qkNorm) json.qk_norm = false;
  return json;
}

export async function readHfConfigFile(path: string): Promise<ModelConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new MoerlError('CONFIG_INVALID', `Cannot read config file ${path}`, {
      cause: error,
      details: { path },
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new MoerlError('CONFIG_INVALID', `${path} is not valid JSON: ${(error as Error).message}`, {
      cause: error,
      details: { path },
    });
  }
  return fromHfConfig(json);
}

/** Writes config.json atomically (temp file + rename). */
export async function writeHfConfigFile(path: string, config: ModelConfig): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(toHfConfig(config), null, 2)}\n`);
}
