import { MoerlError } from '../errors/moerl-error.js';

/**
 * A decoder-only Mixture-of-Experts transformer in the Qwen3-MoE family.
 * Field meanings follow Hugging Face's `Qwen3MoeConfig`; see `fromHfConfig` for the key mapping.
 */
export interface ModelConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  /** Per-head width; may differ from hiddenSize / numAttentionHeads (Qwen3-30B-A3B: 128 with hidden 2048 and 32 heads). */
  readonly headDim: number;
  readonly numExperts: number;
  /** Experts per token (`num_experts_per_tok`). */
  readonly topK: number;
  /** Width of each expert's SwiGLU FFN. */
  readonly moeIntermediateSize: number;
  /** Width of the dense SwiGLU MLP used by non-sparse layers. */
  readonly intermediateSize: number;
  /** Layer i is sparse iff numExperts > 0, (i + 1) % decoderSparseStep === 0 and i is not in mlpOnlyLayers. */
  readonly decoderSparseStep: number;
  readonly mlpOnlyLayers: readonly number[];
  /** Renormalise the top-k router probabilities to sum to one. */
  readonly normTopKProb: boolean;
  readonly ropeTheta: number;
  readonly rmsNormEps: number;
  readonly tieWordEmbeddings: boolean;
  /** q/k/v/o projections carry a bias. */
  readonly attentionBias: boolean;
  /** Qwen3's per-head RMSNorm on queries and keys (over headDim, one weight shared by all heads). */
  readonly qkNorm: boolean;
  readonly maxPositionEmbeddings: number;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
}

/** Defaults for the optional fields; they match Hugging Face's defaults where HF has one. */
export const MODEL_CONFIG_DEFAULTS = {
  numKeyValueHeads: 4,
  decoderSparseStep: 1,
  mlpOnlyLayers: [] as readonly number[],
  normTopKProb: false,
  ropeTheta: 10_000,
  rmsNormEps: 1e-6,
  tieWordEmbeddings: false,
  attentionBias: false,
  qkNorm: true,
  maxPositionEmbeddings: 32_768,
} as const;

type RequiredKeys =
  | 'vocabSize'
  | 'hiddenSize'
  | 'numLayers'
  | 'numAttentionHeads'
  | 'numExperts'
  | 'topK'
  | 'moeIntermediateSize';

/** What `createModelConfig` accepts: the sizes that have no sane default, plus any overrides. */
export type ModelConfigInput = Pick<ModelConfig, RequiredKeys> & Partial<Omit<ModelConfig, RequiredKeys>>;

/** Fills defaults (headDim = hidden / heads, intermediateSize = moeIntermediateSize) and validates. */
export function createModelConfig(input: ModelConfigInput): ModelConfig {
  const config: ModelConfig = {
    ...MODEL_CONFIG_DEFAULTS,
    headDim: Math.floor(input.hiddenSize / input.numAttentionHeads),
    intermediateSize: input.moeIntermediateSize,
    ...input,
  };
  const problems = modelConfigProblems(config);
  if (
    input.headDim === undefined &&
    Number.isInteger(input.hiddenSize) &&
    Number.isInteger(input.numAttentionHeads) &&
    input.numAttentionHeads > 0 &&
    input.hiddenSize % input.numAttentionHeads !== 0
  ) {
    problems.unshift(
      `hiddenSize (${input.hiddenSize}) must be divisible by numAttentionHeads (${input.numAttentionHeads}) unless headDim is given`,
    );
  }
  throwIfProblems(problems);
  return config;
}

/** Lists every problem of a config, one message per field; empty when valid. */
export function modelConfigProblems(config: ModelConfig): string[] {
  const problems: string[] = [];
  const positiveInteger = (field: keyof ModelConfig, allowZero = false) => {
    const value = config[field];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
      problems.push(
        `${field} must be a ${allowZero ? 'non-negative' : 'positive'} integer, found ${String(value)}`,
      );
      return false;
    }
    return true;
  };
  const positiveNumber = (field: keyof ModelConfig) => {
    const value = config[field];
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      problems.push(`${field} must be a positive finite number, found ${String(value)}`);
    }
  };
  const boolean = (field: keyof ModelConfig) => {
    if (typeof config[field] !== 'boolean')
      problems.push(`${field} must be a boolean, found ${String(config[field])}`);
  };

  for (const field of [
    'vocabSize',
    'hiddenSize',
    'numLayers',
    'numAttentionHeads',
    'numKeyValueHeads',
    'headDim',
    'intermediateSize',
    'decoderSparseStep',
    'maxPositionEmbeddings',
  ] as const) {
    positiveInteger(field);
  }
  const expertsOk = positiveInteger('numExperts', true);
  const topKOk = positiveInteger('topK', true);
  positiveInteger('moeIntermediateSize', true);
  positiveNumber('ropeTheta');
  positiveNumber('rmsNormEps');
  for (const field of ['normTopKProb', 'tieWordEmbeddings', 'attentionBias', 'qkNorm'] as const)
    boolean(field);

  if (expertsOk && topKOk) {
    if (config.numExperts > 0 && config.topK < 1) {
      problems.push(`topK must be at least 1 when numExperts > 0, found ${config.topK}`);
    }
    if (config.topK > config.numExperts) {
      problems.push(`topK (${config.topK}) must not exceed numExperts (${config.numExperts})`);
    }
    if (config.numExperts > 65_536) {
      problems.push(
        `numExperts must be at most 65536 (routing records store ids as uint16), found ${config.numExperts}`,
      );
    }
    if (config.numExperts > 0 && config.moeIntermediateSize < 1) {
      problems.push(
        `moeIntermediateSize must be positive when numExperts > 0, found ${config.moeIntermediateSize}`,
      );
    }
  }
  if (
    Number.isInteger(config.numAttentionHeads) &&
    Number.isInteger(config.numKeyValueHeads) &&
    config.numKeyValueHeads > 0 &&
    config.numAttentionHeads % config.numKeyValueHeads !== 0
  ) {
    problems.push(
      `numAttentionHeads (${config.numAttentionHeads}) must be divisible by numKeyValueHeads (${config.numKeyValueHeads})`,
    );
  }
  if (Number.isInteger(config.headDim) && config.headDim % 2 !== 0) {
    problems.push(`headDim must be even for rotary embeddings, found ${config.headDim}`);
  }
  if (!Array.isArray(config.mlpOnlyLayers)) {
    problems.push(`mlpOnlyLayers must be an array of layer indices, found ${String(config.mlpOnlyLayers)}`);
  } else {
    for (const layer of config.mlpOnlyLayers) {
      if (!Number.isInteger(layer) || layer < 0 || layer >= config.numLayers) {
        problems.push(
          `mlpOnlyLayers holds ${String(layer)}, which is not a layer index in [0, ${config.numLayers})`,
        );
      }
    }
  }
  for (const field of ['bosTokenId', 'eosTokenId'] as const) {
    const value = config[field];
    if (value !== undefined && (!Number.isInteger(value) || value < 0 || value >= config.vocabSize)) {
      problems.push(`${field} must be a token id in [0, ${config.vocabSize}), found ${String(value)}`);
    }
  }
  return problems;
}

/** Throws `CONFIG_INVALID` listing every bad field. */
export function validateModelConfig(config: ModelConfig): void {
  throwIfProblems(modelConfigProblems(config));
}

function throwIfProblems(problems: string[]): void {
  if (problems.length > 0) {
    throw new MoerlError('CONFIG_INVALID', `Invalid model config:\n  - ${problems.join('\n  - ')}`, {
      details: { problems },
    });
  }
}

/** Indices of the layers whose MLP is a mixture of experts (the layer axis of a RoutingRecord). */
export function moeLayerIndices(config: ModelConfig): number[] {
  const layers: number[] = [];
  if (config.numExperts <= 0) return layers;
  for (let layer = 0; layer < config.numLayers; layer++) {
    if ((layer + 1) % config.decoderSparseStep === 0 && !config.mlpOnlyLayers.includes(layer))
      layers.push(layer);
  }
  return layers;
}

export function isMoeLayer(config: ModelConfig, layer: number): boolean {
  return moeLayerIndices(config).includes(layer);
}
