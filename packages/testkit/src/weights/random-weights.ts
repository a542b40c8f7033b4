import {
  createRandom,
  expectedWeights,
  float32Tensor,
  type ModelConfig,
  MoerlError,
  type NamedTensors,
} from '@moerl/core';

export interface RandomWeightsOptions {
  /** Multiplies the standard deviation of every matrix (except the router) and bias. Default 1. */
  readonly scale?: number;
  /**
   * Router (`mlp.gate.weight`) standard deviation times √hiddenSize, i.e. roughly the standard deviation of
   * the router logits (its input is RMS-normalised). Default 2, so routing has clear winners instead of the
   * near-uniform, near-tied probabilities a 0.02 init gives. Not affected by `scale`.
   */
  readonly routerScale?: number;
  /** Standard deviation of RMSNorm weights around 1. Default 0.1. */
  readonly normSpread?: number;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) {
    throw new MoerlError('INVALID_ARGUMENT', `${name} must be a non-negative finite number, found ${value}`, {
      details: { found: value },
    });
  }
  return value;
}

/**
 * Normal random weights for every tensor of `expectedWeights(config)`, in that order, as F32:
 * - matrices `[out, in]` (embedding and lm_head included): N(0, (scale / √in)²), so activations stay O(1);
 * - the MoE router: N(0, (routerScale / √hidden)²);
 * - RMSNorm weights (`*norm.weight`): 1 + N(0, normSpread²);
 * - biases: N(0, (0.1 · scale)²).
 *
 * Deterministic for a seed; each tensor draws from `createRandom(seed).fork(name)`, so adding or removing
 * a tensor (e.g. switching `attentionBias`) leaves every other tensor unchanged.
 */
export function createRandomWeights(
  config: ModelConfig,
  seed: number,
  options: RandomWeightsOptions = {},
): NamedTensors {
  const scale = positive('scale', options.scale, 1);
  const routerScale = positive('routerScale', options.routerScale, 2);
  const normSpread = positive('normSpread', options.normSpread, 0.1);
  const root = createRandom(seed);
  const weights: NamedTensors = new Map();
  for (const spec of expectedWeights(config)) {
    const random = root.fork(spec.name);
    let mean = 0;
    let std: number;
    if (spec.name.endsWith('norm.weight')) {
      mean = 1;
      std = normSpread;
    } else if (spec.name.endsWith('.bias')) {
      std = 0.1 * scale;
    } else if (spec.name.endsWith('.mlp.gate.weight')) {
      std = routerScale / Math.sqrt(spec.shape[1]!);
    } else {
      std = scale / Math.sqrt(spec.shape[1]!);
    }
    const data = new Float32Array(spec.shape.reduce((product, size) => product * size, 1));
    for (let index = 0; index < data.length; index++) data[index] = mean + std * random.nextNormal();
    weights.set(spec.name, float32Tensor(spec.shape, data));
  }
  return weights;
}
