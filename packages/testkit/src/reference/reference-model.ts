import {
  createRoutingRecord,
  type ModelConfig,
  MoerlError,
  moeLayerIndices,
  type NamedTensors,
  type RoutingRecord,
  roundToBfloat16,
  validateModelConfig,
  validateRoutingRecord,
  validateWeights,
} from '@moerl/core';
import { matVec, rmsNorm, rope, ropeInverseFrequencies, silu, softmax, topK } from './math.js';

/*
 * A slow, obviously-correct forward pass of Hugging Face's `Qwen3MoeForCausalLM` (eager attention, no
 * cache, one sequence), used as the oracle both compute backends are tested against.
 *
 * Precision: weights and activations are stored as float32; every operation (dot product, norm, softmax,
 * rope, expert mix) accumulates in float64 and rounds its output to float32 once. See `math.ts`. With
 * `activations: 'bf16'` every stored activation is further rounded to bfloat16 where Hugging Face's eager
 * Qwen3-MoE in `torch.bfloat16` rounds it (see `ReferenceModelOptions`).
 */

/**
 * How the reference stores activations.
 *
 * - `fp32` (default): float32, as above.
 * - `bf16`: as Hugging Face's eager `Qwen3MoeForCausalLM` in `torch.bfloat16` computes (bf16 tensors, every
 *   op accumulating in float32 and rounding its output to bf16): the embedding row and the residual stream
 *   after each add; every Linear's output (q/k/v/o, gate/up/down, router gate, LM head); RMSNorm with
 *   statistics in float, the normalised value rounded before the weight multiplies it and the product
 *   rounded; RoPE with cos/sin rounded, each product and the sum rounded; attention scores rounded after
 *   QKᵀ and again after the scale, the softmax taken in float and rounded, the attention output rounded;
 *   SiLU(gate) and SiLU(gate) · up rounded; router softmax, top-k and renormalisation in float32 (HF casts
 *   the logits to float), each expert's output times its float32 gate weight rounded, and the chosen experts
 *   summed in ascending expert id with a rounding after each add (HF's `index_add_` loop over experts).
 *   Logits are the rounded LM-head output. Weights are used as given: round them first (bf16 model) or
 *   fake-quantise them (FP8) as the engine under test does.
 */
export type ReferenceActivations = 'fp32' | 'bf16';

export interface ReferenceModelOptions {
  /** Default `fp32`. */
  readonly activations?: ReferenceActivations;
}

export interface ReferenceForwardOptions {
  /**
   * Experts to use instead of the router's top-k, laid out `[position][moeLayer][k]`. It may cover fewer
   * positions than the sequence has; the positions it does not cover route freely.
   */
  readonly routing?: RoutingRecord;
}

export interface ReferenceForwardResult {
  /** `[positions × vocabSize]`, row t predicting token t + 1. */
  readonly logits: Float32Array;
  /** The experts actually used at every position: the replayed ids where given, the router's top-k elsewhere. */
  readonly routing: RoutingRecord;
  /**
   * The gate weight applied to each expert of `routing`, same layout `[position][moeLayer][k]`: the router
   * probability of that expert, divided by the sum over the k chosen iff `normTopKProb`.
   */
  readonly routingWeights: Float32Array;
  /** softmax over all experts of the router logits, `[position][moeLayer][expert]` (float32). */
  readonly routerProbabilities: Float32Array;
  /**
   * `[positions × hiddenSize]`: the hidden states after the final `model.norm`, i.e. the input of the LM head
   * (`logits[t] = lmHead · finalHidden[t]`). Trainers that differentiate through the head start from here.
   */
  readonly finalHidden: Float32Array;
}

export interface ReferenceModel {
  readonly config: ModelConfig;
  /** Decoder layer index of each MoE layer, i.e. the layer axis of a RoutingRecord. */
  readonly moeLayers: readonly number[];
  forward(tokens: ArrayLike<number>, options?: ReferenceForwardOptions): ReferenceForwardResult;
}

interface Linear {
  readonly weight: Float32Array;
  readonly bias: Float32Array | undefined;
  readonly rows: number;
  readonly cols: number;
}

interface SwiGlu {
  readonly gate: Linear;
  readonly up: Linear;
  readonly down: Linear;
}

interface LayerWeights {
  readonly inputNorm: Float32Array;
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly qNorm: Float32Array | undefined;
  readonly kNorm: Float32Array | undefined;
  readonly postAttentionNorm: Float32Array;
  readonly mlp:
    | { readonly kind: 'dense'; readonly ffn: SwiGlu }
    | {
        readonly kind: 'moe';
        readonly ordinal: number;
        readonly router: Linear;
        readonly experts: readonly SwiGlu[];
      };
}

/**
 * Builds the reference model. Validates the config and that `weights` holds exactly the tensors of
 * `expectedWeights(config)` as F32 with the right shapes (`CHECKPOINT_INVALID` otherwise, naming each bad
 * weight). The config and weights are copied, so later changes to them do not affect the model.
 */
export function createReferenceModel(
  modelConfig: ModelConfig,
  weights: NamedTensors,
  options: ReferenceModelOptions = {},
): ReferenceModel {
  validateModelConfig(modelConfig);
  const activations = options.activations ?? 'fp32';
  if (activations !== 'fp32' && activations !== 'bf16') {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `activations must be one of fp32, bf16, found ${String(activations)}`,
      { details: { field: 'activations', found: activations, supported: ['fp32', 'bf16'] } },
    );
  }
  validateWeights(modelConfig, weights, { dtypes: ['F32'], subject: 'Reference model weights' });
  const config: ModelConfig = { ...modelConfig, mlpOnlyLayers: [...modelConfig.mlpOnlyLayers] };
  const hidden = config.hiddenSize;

  const tensor = (name: string): Float32Array => {
    // validateWeights guarantees presence and dtype.
    return (weights.get(name)!.data as Float32Array).slice();
  };
  const linear = (name: string, rows: number, cols: number, withBias = false): Linear => ({
    weight: tensor(`${name}.weight`),
    bias: withBias ? tensor(`${name}.bias`) : undefined,
    rows,
    cols,
  });
  const swiGlu = (prefix: string, width: number): SwiGlu => ({
    gate: linear(`${prefix}.gate_proj`, width, hidden),
    up: linear(`${prefix}.up_proj`, width, hidden),
    down: linear(`${prefix}.down_proj`, hidden, width),
  });

  const queryWidth = config.numAttentionHeads * config.headDim;
  const keyValueWidth = config.numKeyValueHeads * config.headDim;
  const moeLayers = moeLayerIndices(config);
  const layers: LayerWeights[] = [];
  for (let layer = 0; layer < config.numLayers; layer++) {
    const prefix = `model.layers.${layer}`;
    const ordinal = moeLayers.indexOf(layer);
    const bias = config.attentionBias;
    layers.push({
      inputNorm: tensor(`${prefix}.input_layernorm.weight`),
      q: linear(`${prefix}.self_attn.q_proj`, queryWidth, hidden, bias),
      k: linear(`${prefix}.self_attn.k_proj`, keyValueWidth, hidden, bias),
      v: linear(`${prefix}.self_attn.v_proj`, keyValueWidth, hidden, bias),
      o: linear(`${prefix}.self_attn.o_proj`, hidden, queryWidth, bias),
      qNorm: config.qkNorm ? tensor(`${prefix}.self_attn.q_norm.weight`) : undefined,
      kNorm: config.qkNorm ? tensor(`${prefix}.self_attn.k_norm.weight`) : undefined,
      postAttentionNorm: tensor(`${prefix}.post_attention_layernorm.weight`),
      mlp:
        ordinal >= 0
          ? {
              kind: 'moe',
              ordinal,
              router: linear(`${prefix}.mlp.gate`, config.numExperts, hidden),
              experts: Array.from({ length: config.numExperts }, (_, expert) =>
                swiGlu(`${prefix}.mlp.experts.${expert}`, config.moeIntermediateSize),
              ),
            }
          : { kind: 'dense', ffn: swiGlu(`${prefix}.mlp`, config.intermediateSize) },
    });
  }
  const embedding = tensor('model.embed_tokens.weight');
  const finalNorm = tensor('model.norm.weight');
  const lmHead = config.tieWordEmbeddings ? embedding : tensor('lm_head.weight');
  const inverseFrequencies = ropeInverseFrequencies(config.headDim, config.ropeTheta);

  const forward = (
    tokens: ArrayLike<number>,
    options: ReferenceForwardOptions = {},
  ): ReferenceForwardResult => {
    const ids = checkTokens(config, tokens);
    const replay = options.routing;
    if (replay !== undefined) checkReplay(config, moeLayers.length, replay, ids.length);
    return run(config, ids, replay, {
      layers,
      embedding,
      finalNorm,
      lmHead,
      inverseFrequencies,
      moeLayerCount: moeLayers.length,
      bf16: activations === 'bf16',
    });
  };

  return { config, moeLayers, forward };
}

function checkTokens(config: ModelConfig, tokens: ArrayLike<number>): number[] {
  if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') {
    throw new MoerlError('INVALID_ARGUMENT', 'tokens must be an array of token ids');
  }
  if (tokens.length === 0) {
    throw new MoerlError('INVALID_ARGUMENT', 'tokens must hold at least one token id', {
      details: { found: 0 },
    });
  }
  const ids: number[] = [];
  for (let position = 0; position < tokens.length; position++) {
    const id = tokens[position]!;
    if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `Token ${String(id)} at position ${position} is not a token id in [0, ${config.vocabSize})`,
        { details: { position, found: id, vocabSize: config.vocabSize } },
      );
    }
    ids.push(id);
  }
  return ids;
}

function checkReplay(
  config: ModelConfig,
  moeLayerCount: number,
  record: RoutingRecord,
  sequenceLength: number,
): void {
  validateRoutingRecord(record, {
    numExperts: config.numExperts,
    moeLayers: moeLayerCount,
    topK: config.topK,
  });
  if (record.positions > sequenceLength) {
    throw new MoerlError(
      'ROUTING_SHAPE',
      `Routing record covers ${record.positions} positions but the sequence has only ${sequenceLength} tokens`,
      { details: { expected: sequenceLength, found: record.positions } },
    );
  }
}

interface Prepared {
  readonly layers: readonly LayerWeights[];
  readonly embedding: Float32Array;
  readonly finalNorm: Float32Array;
  readonly lmHead: Float32Array;
  readonly inverseFrequencies: Float32Array;
  readonly moeLayerCount: number;
  /** Round activations to bfloat16 (see `ReferenceActivations`). */
  readonly bf16: boolean;
}

/**
 * The operations of the forward pass at one activation precision: float32 storage, or bfloat16 storage
 * rounded where HF's bf16 eager model rounds (see `ReferenceActivations`).
 */
interface Ops {
  /** Rounds stored activations (identity for float32). */
  readonly store: (values: Float32Array) => Float32Array;
  readonly apply: (layer: Linear, vector: Float32Array) => Float32Array;
  readonly norm: (vector: Float32Array, weight: Float32Array, eps: number) => Float32Array;
  readonly rope: (vector: Float32Array, position: number, inverseFrequencies: Float32Array) => Float32Array;
  readonly swiGlu: (ffn: SwiGlu, vector: Float32Array) => Float32Array;
}

const apply = (layer: Linear, vector: Float32Array) =>
  matVec(layer.weight, layer.rows, layer.cols, vector, layer.bias);

/** `down(silu(gate(x)) · up(x))`. */
function swiGluForward(ffn: SwiGlu, vector: Float32Array): Float32Array {
  const gate = apply(ffn.gate, vector);
  const up = apply(ffn.up, vector);
  const activation = new Float32Array(gate.length);
  for (let index = 0; index < gate.length; index++) activation[index] = silu(gate[index]!) * up[index]!;
  return apply(ffn.down, activation);
}

const FLOAT32_OPS: Ops = {
  store: (values) => values,
  apply,
  norm: rmsNorm,
  rope,
  swiGlu: swiGluForward,
};

const bf16 = roundToBfloat16;
const bf16Scalar = (value: number) => bf16(Float32Array.of(value))[0]!;

const BFLOAT16_OPS: Ops = {
  store: bf16,
  apply: (layer, vector) => bf16(apply(layer, vector)),
  // HF: statistics in float32, `weight * (x * rsqrt(var + eps)).to(bf16)`, the product a bf16 tensor.
  norm: (vector, weight, eps) => {
    const normalized = bf16(rmsNorm(vector, new Float32Array(vector.length).fill(1), eps));
    const out = new Float32Array(vector.length);
    for (let index = 0; index < out.length; index++) out[index] = weight[index]! * normalized[index]!;
    return bf16(out);
  },
  // HF: cos/sin cast to bf16; `q * cos + rotate_half(q) * sin`, each product and the sum a bf16 tensor.
  rope: (vector, position, inverseFrequencies) => {
    const half = inverseFrequencies.length;
    const out = new Float32Array(vector.length);
    for (let index = 0; index < half; index++) {
      const angle = Math.fround(position * inverseFrequencies[index]!);
      const cos = bf16Scalar(Math.cos(angle));
      const sin = bf16Scalar(Math.sin(angle));
      const first = vector[index]!;
      const second = vector[index + half]!;
      out[index] = bf16Scalar(bf16Scalar(first * cos) + bf16Scalar(-second * sin));
      out[index + half] = bf16Scalar(bf16Scalar(second * cos) + bf16Scalar(first * sin));
    }
    return out;
  },
  swiGlu: (ffn, vector) => {
    const gate = bf16(apply(ffn.gate, vector));
    const up = bf16(apply(ffn.up, vector));
    const activation = new Float32Array(gate.length);
    for (let index = 0; index < gate.length; index++) activation[index] = silu(gate[index]!);
    const activated = bf16(activation);
    for (let index = 0; index < gate.length; index++) activation[index] = activated[index]! * up[index]!;
    return bf16(apply(ffn.down, bf16(activation)));
  },
};

function row(matrix: Float32Array, index: number, width: number): Float32Array {
  return matrix.subarray(index * width, (index + 1) * width);
}

function run(
  config: ModelConfig,
  tokens: readonly number[],
  replay: RoutingRecord | undefined,
  prepared: Prepared,
): ReferenceForwardResult {
  const positions = tokens.length;
  const hidden = config.hiddenSize;
  const { headDim, numAttentionHeads, numKeyValueHeads, numExperts, rmsNormEps } = config;
  const groupSize = numAttentionHeads / numKeyValueHeads;
  const queryWidth = numAttentionHeads * headDim;
  const keyValueWidth = numKeyValueHeads * headDim;
  const scale = 1 / Math.sqrt(headDim);
  const moeCount = prepared.moeLayerCount;
  const k = config.topK;
  const ops = prepared.bf16 ? BFLOAT16_OPS : FLOAT32_OPS;
  const { store } = ops;

  const routing = createRoutingRecord({ positions, moeLayers: moeCount, topK: k, numExperts });
  const routingWeights = new Float32Array(positions * moeCount * k);
  const routerProbabilities = new Float32Array(positions * moeCount * numExperts);

  // The residual stream, [positions × hidden].
  const x = new Float32Array(positions * hidden);
  for (let position = 0; position < positions; position++) {
    x.set(store(row(prepared.embedding, tokens[position]!, hidden)), position * hidden);
  }

  for (const layer of prepared.layers) {
    // --- self-attention block ---
    const queries = new Float32Array(positions * queryWidth);
    const keys = new Float32Array(positions * keyValueWidth);
    const values = new Float32Array(positions * keyValueWidth);
    for (let position = 0; position < positions; position++) {
      const normed = ops.norm(row(x, position, hidden), layer.inputNorm, rmsNormEps);
      const q = ops.apply(layer.q, normed);
      const kk = ops.apply(layer.k, normed);
      values.set(ops.apply(layer.v, normed), position * keyValueWidth);
      // q_norm / k_norm over each head's headDim, then RoPE.
      for (let head = 0; head < numAttentionHeads; head++) {
        let vector = row(q, head, headDim);
        if (layer.qNorm !== undefined) vector = ops.norm(vector, layer.qNorm, rmsNormEps);
        queries.set(
          ops.rope(vector, position, prepared.inverseFrequencies),
          position * queryWidth + head * headDim,
        );
      }
      for (let head = 0; head < numKeyValueHeads; head++) {
        let vector = row(kk, head, headDim);
        if (layer.kNorm !== undefined) vector = ops.norm(vector, layer.kNorm, rmsNormEps);
        keys.set(
          ops.rope(vector, position, prepared.inverseFrequencies),
          position * keyValueWidth + head * headDim,
        );
      }
    }

    const attended = new Float32Array(positions * queryWidth);
    const scores = new Float32Array(positions);
    for (let head = 0; head < numAttentionHeads; head++) {
      const keyValueHead = Math.floor(head / groupSize);
      for (let target = 0; target < positions; target++) {
        const query = queries.subarray(
          target * queryWidth + head * headDim,
          target * queryWidth + (head + 1) * headDim,
        );
        // Causal: only source positions ≤ target take part.
        for (let source = 0; source <= target; source++) {
          const keyOffset = source * keyValueWidth + keyValueHead * headDim;
          let dot = 0;
          for (let index = 0; index < headDim; index++) dot += query[index]! * keys[keyOffset + index]!;
          // bf16: `matmul(q, kᵀ)` and `· scaling` (a float32 scalar) are two bf16 tensors.
          scores[source] = prepared.bf16 ? bf16Scalar(bf16Scalar(dot) * Math.fround(scale)) : dot * scale;
        }
        const weights = store(softmax(scores.subarray(0, target + 1)));
        const outOffset = target * queryWidth + head * headDim;
        for (let index = 0; index < headDim; index++) {
          let sum = 0;
          for (let source = 0; source <= target; source++) {
            sum += weights[source]! * values[source * keyValueWidth + keyValueHead * headDim + index]!;
          }
          attended[outOffset + index] = sum;
        }
      }
    }
    const attendedStored = store(attended);
    for (let position = 0; position < positions; position++) {
      const projected = ops.apply(layer.o, row(attendedStored, position, queryWidth));
      const residual = row(x, position, hidden);
      for (let index = 0; index < hidden; index++) residual[index] = residual[index]! + projected[index]!;
      residual.set(store(residual));
    }

    // --- MLP block ---
    for (let position = 0; position < positions; position++) {
      const residual = row(x, position, hidden);
      const normed = ops.norm(residual, layer.postAttentionNorm, rmsNormEps);
      let output: Float32Array;
      if (layer.mlp.kind === 'dense') {
        output = ops.swiGlu(layer.mlp.ffn, normed);
      } else {
        const { ordinal, router, experts } = layer.mlp;
        const probabilities = softmax(ops.apply(router, normed));
        routerProbabilities.set(probabilities, (position * moeCount + ordinal) * numExperts);
        const slot = (position * moeCount + ordinal) * k;
        const chosen: number[] =
          replay !== undefined && position < replay.positions
            ? Array.from(replay.experts.subarray(slot, slot + k))
            : topK(probabilities, k);
        const gate = chosen.map((expert) => probabilities[expert]!);
        if (config.normTopKProb) {
          const total = Math.fround(gate.reduce((sum, value) => sum + value, 0));
          for (let index = 0; index < k; index++) gate[index] = Math.fround(gate[index]! / total);
        }
        for (let index = 0; index < k; index++) {
          routing.experts[slot + index] = chosen[index]!;
          routingWeights[slot + index] = gate[index]!;
        }
        if (prepared.bf16) {
          // HF: each expert's output · its weight is rounded to bf16, and `index_add_` adds the experts in
          // ascending id into a bf16 sum, rounding after each add.
          const order = Array.from({ length: k }, (_, index) => index).sort(
            (a, b) => chosen[a]! - chosen[b]!,
          );
          output = new Float32Array(hidden);
          for (const index of order) {
            const expertOutput = ops.swiGlu(experts[chosen[index]!]!, normed);
            const weighted = new Float32Array(hidden);
            for (let dim = 0; dim < hidden; dim++) weighted[dim] = gate[index]! * expertOutput[dim]!;
            const rounded = bf16(weighted);
            for (let dim = 0; dim < hidden; dim++) output[dim] = output[dim]! + rounded[dim]!;
            output = bf16(output);
          }
        } else {
          const mixed = new Float64Array(hidden);
          for (let index = 0; index < k; index++) {
            const expertOutput = swiGluForward(experts[chosen[index]!]!, normed);
            for (let dim = 0; dim < hidden; dim++)
              mixed[dim] = mixed[dim]! + gate[index]! * expertOutput[dim]!;
          }
          output = Float32Array.from(mixed);
        }
      }
      for (let index = 0; index < hidden; index++) residual[index] = residual[index]! + output[index]!;
      residual.set(store(residual));
    }
  }

  const logits = new Float32Array(positions * config.vocabSize);
  const finalHidden = new Float32Array(positions * hidden);
  for (let position = 0; position < positions; position++) {
    const normed = ops.norm(row(x, position, hidden), prepared.finalNorm, rmsNormEps);
    finalHidden.set(normed, position * hidden);
    logits.set(store(matVec(prepared.lmHead, config.vocabSize, hidden, normed)), position * config.vocabSize);
  }
  return { logits, routing, routingWeights, routerProbabilities, finalHidden };
}
