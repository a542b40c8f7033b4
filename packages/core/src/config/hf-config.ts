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

const REQUIRED = [
  'vocab_size',
  'hidden_size',
  'num_hidden_layers',
  'num_attention_heads',
  'num_experts',
  'num_experts_per_tok',
  'moe_intermediate_size',
] as const;

function invalid(message: string, details: Record<string, unknown> = {}): MoerlError {
  return new MoerlError('CONFIG_INVALID', message, { details });
}

/**
 * Maps a Hugging Face Qwen3-MoE config.json object to a validated ModelConfig. Absent keys take HF's defaults
 * (`norm_topk_prob` false, `tie_word_embeddings` false, `rope_theta` 10000, `num_key_value_heads` 4,
 * `head_dim` = hidden / heads). Variants moerl does not compute (sliding window, RoPE scaling, activations
 * other than SiLU) are rejected rather than approximated.
 */
export function fromHfConfig(json: unknown): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw invalid(
      `config.json must hold a JSON object, found ${Array.isArray(json) ? 'an array' : typeof json}`,
    );
  }
  const raw = json as Record<string, unknown>;
  const missing = REQUIRED.filter((key) => raw[key] === undefined);
  if (missing.length > 0) {
    throw invalid(`config.json lacks required key(s): ${missing.join(', ')}`, { missing });
  }
  if (raw.hidden_act !== undefined && raw.hidden_act !== 'silu') {
    throw invalid(
      `hidden_act "${String(raw.hidden_act)}" is not supported; moerl computes SwiGLU with "silu"`,
    );
  }
  if (raw.use_sliding_window === true) {
    throw invalid('use_sliding_window is true; sliding-window attention is not supported');
  }
  if (raw.rope_scaling !== undefined && raw.rope_scaling !== null) {
    throw invalid(
      `rope_scaling ${JSON.stringify(raw.rope_scaling)} is not supported; only plain RoPE is computed`,
    );
  }
  if (raw.model_type !== undefined && raw.model_type !== 'qwen3_moe') {
    throw invalid(`model_type "${String(raw.model_type)}" is not supported; expected "qwen3_moe"`);
  }
  const input: { -readonly [K in keyof ModelConfigInput]: unknown } = {
    vocabSize: raw.vocab_size,
    hiddenSize: raw.hidden_size,
    numLayers: raw.num_hidden_layers,
    numAttentionHeads: raw.num_attention_heads,
    numExperts: raw.num_experts,
    topK: raw.num_experts_per_tok,
    moeIntermediateSize: raw.moe_intermediate_size,
  };
  const optional: Array<[keyof ModelConfig, string]> = [
    ['numKeyValueHeads', 'num_key_value_heads'],
    ['headDim', 'head_dim'],
    ['intermediateSize', 'intermediate_size'],
    ['decoderSparseStep', 'decoder_sparse_step'],
    ['mlpOnlyLayers', 'mlp_only_layers'],
    ['normTopKProb', 'norm_topk_prob'],
    ['ropeTheta', 'rope_theta'],
    ['rmsNormEps', 'rms_norm_eps'],
    ['tieWordEmbeddings', 'tie_word_embeddings'],
    ['attentionBias', 'attention_bias'],
    ['maxPositionEmbeddings', 'max_position_embeddings'],
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
