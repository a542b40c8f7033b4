import { createRoutingRecord, isMoeLayer, moeLayerIndices, type RoutingRecord } from '@moerl/core';
import * as tf from '@tensorflow/tfjs-core';
import { applyRope, linear, rmsNorm, swiGlu } from './layers.js';
import type { ModelParameters } from './parameters.js';
import { createPositionTensors, type PositionTableCache } from './position-tables.js';
import { type ExpertWeights, routedExperts } from './routed-experts.js';
import {
  type LayerRoutingPlan,
  needsFreeRouting,
  type PaddedLayout,
  planLayerRouting,
} from './routing-plan.js';
import { gatherRows } from './row-ops.js';

/**
 * How the experts of a MoE layer are computed:
 * - `gathered`: each expert runs only on the rows routed to it (gather → SwiGLU → scale → scatter-add, one
 *   op with its own backward: `routed-expert.ts`), so the cost scales with tokens × topK;
 * - `dense`: every expert runs on every row and its output is multiplied by a gate that is zero where the
 *   expert was not chosen (tokens × numExperts); a fallback, and the baseline the benchmark compares with.
 */
export type ExpertComputation = 'gathered' | 'dense';

export interface PaddedBatch extends PaddedLayout {
  /** `[size × length]` token ids, right-padded (padding ids are 0 and feed nothing that is used). */
  readonly tokens: Int32Array;
}

export interface ForwardOptions {
  /**
   * Per sequence: experts to replay, `[position][moeLayer][k]`, covering at most its fed positions. Positions
   * it does not cover (and sequences without one) route freely.
   */
  readonly replay?: readonly (RoutingRecord | undefined)[];
  readonly experts?: ExpertComputation;
  /**
   * Where to take the RoPE tables and causal mask of this length from (kept across calls). Without one they
   * are built for this call and freed with its `tf.tidy` scope.
   */
  readonly positionTables?: PositionTableCache;
  /** Also return what the load-balancing loss needs (`routerStats`). */
  readonly routerStats?: boolean;
  /** Partial replay of the `replay` records (see `PartialReplayOptions` in @moerl/core). */
  readonly partialReplay?: { readonly minScoreRatio: number };
}

/** Router statistics over the real (non-padding) rows of every MoE layer of one forward pass. */
export interface RouterStats {
  /** `[numExperts]`: router probabilities summed over real rows and MoE layers (differentiable). */
  readonly probabilitySum: tf.Tensor1D;
  /** `[moeLayer × numExperts]`: how many real rows used each expert (free or replayed choice). */
  readonly expertCounts: Float64Array;
  /** Real rows per MoE layer. */
  readonly realRows: number;
}

export interface ForwardResult {
  /** `[size × length, hiddenSize]`: the hidden states after the final norm (the LM head's input). */
  readonly hidden: tf.Tensor2D;
  /** Per sequence, the experts used at each fed position. */
  readonly routing: RoutingRecord[];
  /** When asked for and the model has MoE layers. */
  readonly routerStats?: RouterStats;
  /** Expert slots replayed from a record (all MoE layers), and how many partial replay replaced. */
  readonly replayedSlots: number;
  readonly replacedSlots: number;
}

/*
 * The forward pass of Qwen3-MoE over a right-padded batch, as `reference-model.ts` in @moerl/testkit computes
 * it one sequence at a time. Right padding needs no attention mask beyond the causal one: a real position
 * never looks at a later (padding) one. Padding rows skip the experts (their MoE output is zero) and feed no
 * loss. Call inside `tf.tidy` / `tf.variableGrads`; the routing decision reads router probabilities back to
 * the host, which is where free top-k happens (top-k has no gradient; the gate weights keep theirs).
 */
export function forwardHidden(
  parameters: ModelParameters,
  batch: PaddedBatch,
  options: ForwardOptions = {},
): ForwardResult {
  const { config } = parameters;
  const { size, length } = batch;
  const rows = size * length;
  const { headDim, numAttentionHeads, numKeyValueHeads, rmsNormEps: eps } = config;
  const group = numAttentionHeads / numKeyValueHeads;
  const replay = options.replay ?? [];
  const experts = options.experts ?? 'gathered';
  const moeCount = moeLayerIndices(config).length;
  const chosen = new Int32Array(rows * moeCount * config.topK);
  const minScoreRatio = options.partialReplay?.minScoreRatio;
  // The host needs the router probabilities wherever the trainer's own scores pick or judge experts.
  const hostProbabilities = minScoreRatio !== undefined || needsFreeRouting(batch, replay);
  let replayedSlots = 0;
  let replacedSlots = 0;

  const p = (name: string) => parameters.get(name);
  const bias = (name: string) => (config.attentionBias ? (p(name) as tf.Tensor1D) : undefined);

  let x = gatherRows(p('model.embed_tokens.weight') as tf.Tensor2D, batch.tokens);

  const { cos, sin, rotateHalf, causalMask } =
    options.positionTables?.get(length) ?? createPositionTensors(length, headDim, config.ropeTheta);
  const scale = 1 / Math.sqrt(headDim);

  let ordinal = 0;
  const collectStats = options.routerStats === true && moeCount > 0;
  const expertCounts = new Float64Array(collectStats ? moeCount * config.numExperts : 0);
  let probabilitySum: tf.Tensor1D | undefined;
  let realRowMask: tf.Tensor2D | undefined;
  for (let layer = 0; layer < config.numLayers; layer++) {
    const prefix = `model.layers.${layer}`;
    // --- self-attention ---
    const normed = rmsNorm(x, p(`${prefix}.input_layernorm.weight`) as tf.Tensor1D, eps);
    const project = (name: string) =>
      linear(
        normed,
        p(`${prefix}.self_attn.${name}.weight`) as tf.Tensor2D,
        bias(`${prefix}.self_attn.${name}.bias`),
      );
    let q = tf.reshape(project('q_proj'), [size, length, numAttentionHeads, headDim]) as tf.Tensor4D;
    let k = tf.reshape(project('k_proj'), [size, length, numKeyValueHeads, headDim]) as tf.Tensor4D;
    const v = tf.reshape(project('v_proj'), [size, length, numKeyValueHeads, headDim]) as tf.Tensor4D;
    if (config.qkNorm) {
      q = rmsNorm(q, p(`${prefix}.self_attn.q_norm.weight`) as tf.Tensor1D, eps);
      k = rmsNorm(k, p(`${prefix}.self_attn.k_norm.weight`) as tf.Tensor1D, eps);
    }
    q = applyRope(q, cos, sin, rotateHalf);
    k = applyRope(k, cos, sin, rotateHalf);
    // Grouped-query attention without copying keys and values per query head (tfjs-wasm's Tile took 16 % of
    // a demo training step): the `group` query heads of key/value head j (heads j·group … j·group + group − 1)
    // are stacked along the query axis, [size, kvHeads, group · length, headDim], and read j's keys directly.
    // The same dot products and softmax rows as with repeated heads.
    const qT = tf.reshape(
      tf.transpose(tf.reshape(q, [size, length, numKeyValueHeads, group, headDim]), [0, 2, 3, 1, 4]),
      [size, numKeyValueHeads, group * length, headDim],
    );
    const kT = tf.transpose(k, [0, 2, 1, 3]);
    const vT = tf.transpose(v, [0, 2, 1, 3]);
    const products = tf.reshape(tf.matMul(qT, kT, false, true), [
      size,
      numKeyValueHeads,
      group,
      length,
      length,
    ]);
    const scores = tf.add(tf.mul(products, scale), causalMask);
    const attended = tf.matMul(
      tf.reshape(tf.softmax(scores), [size, numKeyValueHeads, group * length, length]),
      vT,
    );
    const merged = tf.reshape(
      tf.transpose(tf.reshape(attended, [size, numKeyValueHeads, group, length, headDim]), [0, 3, 1, 2, 4]),
      [rows, numAttentionHeads * headDim],
    ) as tf.Tensor2D;
    x = tf.add(
      x,
      linear(
        merged,
        p(`${prefix}.self_attn.o_proj.weight`) as tf.Tensor2D,
        bias(`${prefix}.self_attn.o_proj.bias`),
      ),
    );

    // --- MLP ---
    const mlpInput = rmsNorm(x, p(`${prefix}.post_attention_layernorm.weight`) as tf.Tensor1D, eps);
    let output: tf.Tensor2D;
    if (isMoeLayer(config, layer)) {
      const routerLogits = linear(mlpInput, p(`${prefix}.mlp.gate.weight`) as tf.Tensor2D);
      const probabilities = tf.softmax(routerLogits);
      const plan = planLayerRouting({
        layout: batch,
        numExperts: config.numExperts,
        topK: config.topK,
        moeLayers: moeCount,
        ordinal,
        replay,
        probabilities: hostProbabilities ? (probabilities.dataSync() as Float32Array) : undefined,
        chosen,
        ...(minScoreRatio === undefined ? {} : { minScoreRatio }),
      });
      replayedSlots += plan.replayedSlots;
      replacedSlots += plan.replacedSlots;
      output = mixExperts(parameters, prefix, mlpInput, probabilities, plan, experts);
      if (collectStats) {
        realRowMask ??= tf.tensor2d(
          plan.padding.map((pad) => 1 - pad),
          [1, rows],
        );
        const layerSum = tf.reshape(tf.matMul(realRowMask, probabilities), [
          config.numExperts,
        ]) as tf.Tensor1D;
        probabilitySum =
          probabilitySum === undefined ? layerSum : (tf.add(probabilitySum, layerSum) as tf.Tensor1D);
        for (let row = 0; row < rows; row++) {
          for (let expert = 0; expert < config.numExperts; expert++) {
            expertCounts[ordinal * config.numExperts + expert]! +=
              plan.mask[row * config.numExperts + expert]!;
          }
        }
      }
      ordinal++;
    } else {
      output = swiGlu(
        mlpInput,
        p(`${prefix}.mlp.gate_proj.weight`) as tf.Tensor2D,
        p(`${prefix}.mlp.up_proj.weight`) as tf.Tensor2D,
        p(`${prefix}.mlp.down_proj.weight`) as tf.Tensor2D,
      );
    }
    x = tf.add(x, output);
  }
  const hidden = rmsNorm(x, p('model.norm.weight') as tf.Tensor1D, eps);

  const routing = Array.from({ length: size }, (_, sequence) => {
    const fed = batch.fed[sequence]!;
    const width = moeCount * config.topK;
    const start = sequence * length * width;
    return createRoutingRecord(
      { positions: fed, moeLayers: moeCount, topK: config.topK, numExperts: config.numExperts },
      chosen.subarray(start, start + fed * width),
    );
  });
  const realRows = batch.fed.reduce((total, fed) => total + fed, 0);
  return {
    hidden,
    routing,
    replayedSlots,
    replacedSlots,
    ...(probabilitySum === undefined ? {} : { routerStats: { probabilitySum, expertCounts, realRows } }),
  };
}

/**
 * The gated sum of the chosen experts' outputs. Gate weights are the router softmax at the chosen experts
 * (renormalised over them iff `normTopKProb`), so the router gets gradients whether the experts were chosen
 * by it or replayed.
 */
function mixExperts(
  parameters: ModelParameters,
  prefix: string,
  input: tf.Tensor2D,
  probabilities: tf.Tensor2D,
  plan: LayerRoutingPlan,
  computation: ExpertComputation,
): tf.Tensor2D {
  const { config } = parameters;
  const rows = input.shape[0];
  const numExperts = config.numExperts;
  let gates = tf.mul(probabilities, tf.tensor2d(plan.mask, [rows, numExperts])) as tf.Tensor2D;
  if (config.normTopKProb) {
    const total = tf.add(tf.sum(gates, -1, true), tf.tensor2d(plan.padding, [rows, 1]));
    gates = tf.div(gates, total);
  }
  const expertWeights = (index: number): ExpertWeights => {
    const weight = (projection: string) =>
      parameters.get(`${prefix}.mlp.experts.${index}.${projection}.weight`) as tf.Tensor2D;
    return { gate: weight('gate_proj'), up: weight('up_proj'), down: weight('down_proj') };
  };

  if (computation === 'dense') {
    const columns = tf.split(gates, numExperts, 1) as tf.Tensor2D[];
    let sum: tf.Tensor2D = tf.zeros([rows, config.hiddenSize]);
    for (let index = 0; index < numExperts; index++) {
      const { gate, up, down } = expertWeights(index);
      sum = tf.add(sum, tf.mul(swiGlu(input, gate, up, down), columns[index]!));
    }
    return sum;
  }

  // Gathered: one op for the layer (`routedExperts`): each used expert multiplies only its own rows, the
  // elementwise work runs once over all (row, expert) pairs, and one scatter adds the results back.
  const flatGates = tf.reshape(gates, [rows * numExperts, 1]) as tf.Tensor2D;
  const used = plan.expertRows.flatMap((expertRows, index) =>
    expertRows.length === 0
      ? []
      : [
          {
            rows: expertRows,
            gateIndex: expertRows.map((row) => row * numExperts + index),
            weights: expertWeights(index),
          },
        ],
  );
  return used.length === 0 ? tf.zeros([rows, config.hiddenSize]) : routedExperts(input, flatGates, used);
}

/** `[rows, vocab]` logits of the given rows of `hidden`. */
export function headLogits(parameters: ModelParameters, hidden: tf.Tensor2D): tf.Tensor2D {
  const head = parameters.config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  return linear(hidden, parameters.get(head) as tf.Tensor2D);
}
