import { type ModelConfig, MoerlError, moeLayerIndices } from '@moerl/core';
import { GraphBuilder as Builder, type GraphBuilder } from '../onnx/graph-builder.js';
import type { GraphMessage } from '../onnx/onnx-proto.js';

// ONNX TensorProto element types used by Cast.
const FLOAT = 1;
const BFLOAT16 = 16;

/** Names of the graph's non-weight inputs and outputs; the engine and tests feed and read these. */
export const GRAPH_IO = {
  inputIds: 'input_ids',
  positionIds: 'position_ids',
  attentionBias: 'attention_bias',
  logitRows: 'logit_rows',
  pastKey: (layer: number) => `past_key.${layer}`,
  pastValue: (layer: number) => `past_value.${layer}`,
  logits: 'logits',
  presentKey: (layer: number) => `present_key.${layer}`,
  presentValue: (layer: number) => `present_value.${layer}`,
  routing: 'routing',
} as const;

/** Where the graph gets a weight from: a graph input (replaceable per run) or an initializer (export). */
export type WeightSource = (
  graph: GraphBuilder,
  name: string,
  shape: readonly number[],
  type: ComputeType,
) => string;

export const weightsAsInputs: WeightSource = (graph, name, shape, type) => graph.input(name, type, shape);

/**
 * The element type of weights, activations and matrix products. With `float16`, every Linear (the router's
 * gate included, so router logits are float16), the attention MatMuls, SwiGLU and the expert mix run in
 * float16, and the steps Hugging Face runs in float32 stay float32: RMSNorm statistics, the RoPE angles and
 * cos/sin (then cast to float16), the attention softmax, and the router's softmax, top-k and
 * renormalisation (the gate weights are cast to float16 to scale the experts). KV inputs/outputs and logits
 * are float32 at the graph boundary either way.
 */
export type ComputeType = 'float32' | 'float16';

/**
 * How a `float32` graph stores activations. `fp32`: as computed. `bf16`: each activation a bf16 engine (Hugging
 * Face's eager Qwen3-MoE in `torch.bfloat16`) stores as a bf16 tensor is rounded to bfloat16 (a Cast to
 * bfloat16 and back, round to nearest even) right where it is produced, while every product accumulates in
 * float32: the embedding row and the residual stream after each add; every Linear's output (q/k/v/o,
 * gate/up/down, the router gate, the LM head); RMSNorm's normalised value before the weight and the product;
 * RoPE's cos/sin, each product and the sum; the attention scores after QKᵀ and again after the scale, the
 * probabilities (softmax in float32) and the attention output; SiLU(gate) and SiLU(gate) · up; each expert's
 * output times its float32 gate weight, summed in ascending expert id with a rounding after each add (HF's
 * `index_add_` over experts). The router softmax, top-k and renormalisation stay float32, as HF casts the
 * router logits to float. Logits are the rounded LM-head output, float32 at the boundary. Not with `float16`.
 */
export type ActivationPrecision = 'fp32' | 'bf16';

/**
 * How the experts of a MoE layer reach the graph. `per-expert`: one tensor per Hugging Face weight, stacked
 * inside the graph (what `exportOnnx` writes). `stacked-inputs`: the engine stacks and transposes them on
 * the host once per weight update and feeds two inputs per layer (fewer inputs and nodes per run).
 */
export type ExpertLayout = 'per-expert' | 'stacked-inputs';

/**
 * How a MoE layer computes its experts.
 *
 * - `dense`: every expert runs on every row (one batched MatMul over the expert axis) and the unchosen ones
 *   are weighted 0. Cost follows all experts.
 * - `sparse`: the (row, k) pairs are grouped by expert and each expert multiplies only its own rows (one
 *   MatMul per expert and projection). Cost follows the chosen experts, plus a fixed cost per expert.
 * - `grouped`: the pairs are laid out as `[experts, capacity, hidden]`, capacity being the busiest expert's
 *   pair count, and one batched MatMul per projection runs every expert on its own slots. Cost follows
 *   experts × capacity (between the chosen pairs and `dense`), with a node count independent of the experts.
 *
 * All are exact (the same routing and logits within float32 rounding) and batch invariant.
 */
export type ExpertCompute = 'dense' | 'sparse' | 'grouped';

/**
 * Input names of the host-stacked experts: `[experts, hidden, 2 × width]` (gate ‖ up) and
 * `[experts, width, hidden]` for `dense` compute; one `[hidden, 2 × width]` and `[width, hidden]` input per
 * expert (views of the same stacks) for `sparse` compute.
 */
export const STACKED_EXPERTS = {
  gateUp: (layer: number) => `model.layers.${layer}.mlp.experts.gate_up_proj.stacked`,
  down: (layer: number) => `model.layers.${layer}.mlp.experts.down_proj.stacked`,
  expertGateUp: (layer: number, expert: number) =>
    `model.layers.${layer}.mlp.experts.${expert}.gate_up_proj.transposed`,
  expertDown: (layer: number, expert: number) =>
    `model.layers.${layer}.mlp.experts.${expert}.down_proj.transposed`,
} as const;

/**
 * The Qwen3-MoE forward pass of `testkit`'s reference model as one ONNX graph over a KV cache:
 *
 * - inputs: `input_ids` / `position_ids` `[batch, sequence]` (int64), `attention_bias` `[batch, sequence,
 *   past + sequence]` (0 where a query may attend to a slot, a large negative number elsewhere: causal
 *   mask and ragged-batch holes in one), `logit_rows` `[rows]` (which flattened `batch × sequence` rows get
 *   logits), `past_key.{i}` / `past_value.{i}` `[batch, kvHeads, past, headDim]` per layer, and the weights
 *   under their Hugging Face names.
 * - outputs: `logits` `[rows, vocab]`, `present_key.{i}` / `present_value.{i}` (past with the new
 *   positions appended) and `routing` `[batch × sequence, moeLayers × topK]` (int64 expert ids, laid out
 *   `[position][moeLayer][k]` like a RoutingRecord) when the model has MoE layers.
 *
 * Prefill (`sequence` = many, `past` = 0 or a cached prefix) and batched decode (`sequence` = 1) run the same
 * graph. Arithmetic is float32 (`computeType` `float32`, activations rounded to bfloat16 with `activations`
 * `bf16`) or float16 (`computeType` `float16`: see `ComputeType`). Opset 17. `expertCompute` chooses how MoE
 * layers run their experts.
 */
export function buildMoeGraph(
  config: ModelConfig,
  weightSource: WeightSource = weightsAsInputs,
  expertLayout: ExpertLayout = 'per-expert',
  computeType: ComputeType = 'float32',
  expertCompute: ExpertCompute = 'dense',
  activations: ActivationPrecision = 'fp32',
): GraphMessage {
  const g = new Builder();
  const half16 = computeType === 'float16';
  if (activations !== 'fp32' && activations !== 'bf16') {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `activations must be fp32 or bf16, found ${String(activations)}`,
      {
        details: { field: 'activations', found: activations },
      },
    );
  }
  const bf16 = activations === 'bf16';
  if (bf16 && half16) {
    throw new MoerlError(
      'UNSUPPORTED',
      'activations bf16 needs computeType float32 (bf16 activations are rounded float32 values), found float16',
      { details: { field: 'activations', found: activations, computeType } },
    );
  }
  // A stored bf16 activation: rounded to bfloat16 (nearest even) and widened back; no nodes for fp32.
  const store = (value: string) =>
    bf16 ? g.op('Cast', [g.op('Cast', [value], { to: BFLOAT16 })], { to: FLOAT }) : value;
  // Casts into and out of the compute type; no nodes at all for float32.
  const toCompute = (value: string) => (half16 ? g.op('Cast', [value], { to: 10 }) : value);
  const toFloat = (value: string) => (half16 ? g.op('Cast', [value], { to: 1 }) : value);
  const weightNames = new Map<string, string>();
  // A weight is declared once even when used twice (tied embeddings).
  const weight = (name: string, shape: readonly number[]) => {
    let value = weightNames.get(name);
    if (value === undefined) {
      value = weightSource(g, name, shape, computeType);
      weightNames.set(name, value);
    }
    return value;
  };
  const { hiddenSize: hidden, headDim, numAttentionHeads: heads, numKeyValueHeads: kvHeads } = config;
  const groupSize = heads / kvHeads;
  const queryWidth = heads * headDim;
  const keyValueWidth = kvHeads * headDim;
  const moeLayers = moeLayerIndices(config);
  const eps = g.floats([config.rmsNormEps], []);

  const inputIds = g.input(GRAPH_IO.inputIds, 'int64', ['batch', 'sequence']);
  const positionIds = g.input(GRAPH_IO.positionIds, 'int64', ['batch', 'sequence']);
  const attentionBias = g.input(GRAPH_IO.attentionBias, 'float32', ['batch', 'sequence', 'total']);
  const logitRows = g.input(GRAPH_IO.logitRows, 'int64', ['rows']);

  const batchBySequence = g.op('Shape', [inputIds]);
  const linear = (x: string, name: string, rows: number, cols: number, bias = false) =>
    store(
      g.op(
        'Gemm',
        bias
          ? [x, weight(`${name}.weight`, [rows, cols]), weight(`${name}.bias`, [rows])]
          : [x, weight(`${name}.weight`, [rows, cols])],
        { transB: 1 },
      ),
    );
  // RMSNorm over the last axis: x / sqrt(mean(x²) + eps) · w.
  // Statistics in float32, cast back to the compute type before the weight (as HF does for half types).
  const rmsNorm = (input: string, weightName: string, width: number) => {
    const x = toFloat(input);
    const meanSquare = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
    const rms = g.op('Sqrt', [g.op('Add', [meanSquare, eps])]);
    return store(g.op('Mul', [store(toCompute(g.op('Div', [x, rms]))), weight(weightName, [width])]));
  };
  // SiLU(gate) · up, each a stored activation.
  const gated = (gate: string, up: string) =>
    store(g.op('Mul', [store(g.op('Mul', [gate, g.op('Sigmoid', [gate])])), up]));
  const swiGlu = (x: string, prefix: string, width: number) => {
    const gate = linear(x, `${prefix}.gate_proj`, width, hidden);
    const up = linear(x, `${prefix}.up_proj`, width, hidden);
    return linear(gated(gate, up), `${prefix}.down_proj`, hidden, width);
  };

  // Rotary tables for every flattened position: cos/sin [N, 1, headDim] (both halves share one angle).
  const half = headDim / 2;
  const inverseFrequencies: number[] = [];
  for (let index = 0; index < half; index++) {
    const exponent = Math.fround((2 * index) / headDim);
    inverseFrequencies.push(Math.fround(1 / Math.fround(config.ropeTheta ** exponent)));
  }
  const positions = g.op('Cast', [g.op('Reshape', [positionIds, g.ints([-1, 1])])], { to: 1 });
  const angles = g.op('Mul', [positions, g.floats(inverseFrequencies)]);
  const ropeTable = (op: 'Cos' | 'Sin') => {
    const values = g.op(op, [angles]);
    return store(toCompute(g.op('Unsqueeze', [g.op('Concat', [values, values], { axis: -1 }), g.ints([1])])));
  };
  const cos = ropeTable('Cos');
  const sin = ropeTable('Sin');
  const rope = (x: string) => {
    const [first, second] = g.node('Split', [x, g.ints([half, half])], { axis: -1 }, 2) as [string, string];
    const rotated = g.op('Concat', [g.op('Neg', [second]), first], { axis: -1 });
    return store(g.op('Add', [store(g.op('Mul', [x, cos])), store(g.op('Mul', [rotated, sin]))]));
  };
  // [N, width] → [batch, heads, sequence, headDim]
  const toHeads = (x: string, headCount: number) => {
    const shape = g.op('Concat', [batchBySequence, g.ints([headCount, headDim])], { axis: 0 });
    return g.op('Transpose', [g.op('Reshape', [x, shape])], { perm: [0, 2, 1, 3] });
  };

  // Additive mask tiled over the query group: rows of [batch, kvHeads, group × sequence, total] are g·S + s.
  const mask = g.op('Tile', [g.op('Unsqueeze', [attentionBias, g.ints([1])]), g.ints([1, 1, groupSize, 1])]);
  const scale = toCompute(g.floats([1 / Math.sqrt(headDim)], []));

  // One expert's matrices, transposed: [hidden, 2·width] (gate ‖ up) and [width, hidden].
  const expertMatrices = (layer: number, expert: number, width: number) => {
    if (expertLayout === 'stacked-inputs') {
      return {
        gateUp: g.input(STACKED_EXPERTS.expertGateUp(layer, expert), computeType, [hidden, 2 * width]),
        down: g.input(STACKED_EXPERTS.expertDown(layer, expert), computeType, [width, hidden]),
      };
    }
    const prefix = `model.layers.${layer}.mlp.experts.${expert}`;
    const transposed = (name: string, shape: number[]) =>
      g.op('Transpose', [weight(name, shape)], { perm: [1, 0] });
    return {
      gateUp: g.op(
        'Concat',
        [
          transposed(`${prefix}.gate_proj.weight`, [width, hidden]),
          transposed(`${prefix}.up_proj.weight`, [width, hidden]),
        ],
        { axis: 1 },
      ),
      down: transposed(`${prefix}.down_proj.weight`, [hidden, width]),
    };
  };

  // The experts of a layer as [experts, hidden, 2·width] (gate ‖ up, transposed) and [experts, width, hidden].
  const expertStacks = (layer: number, width: number) => {
    if (expertLayout === 'stacked-inputs') {
      return {
        gateUp: g.input(STACKED_EXPERTS.gateUp(layer), computeType, [config.numExperts, hidden, 2 * width]),
        down: g.input(STACKED_EXPERTS.down(layer), computeType, [config.numExperts, width, hidden]),
      };
    }
    const gateUps: string[] = [];
    const downs: string[] = [];
    for (let expert = 0; expert < config.numExperts; expert++) {
      const matrices = expertMatrices(layer, expert, width);
      gateUps.push(g.op('Unsqueeze', [matrices.gateUp, g.ints([0])]));
      downs.push(g.op('Unsqueeze', [matrices.down, g.ints([0])]));
    }
    return { gateUp: g.op('Concat', gateUps, { axis: 0 }), down: g.op('Concat', downs, { axis: 0 }) };
  };

  // SiLU(gate) · up of [..., 2·width] gate ‖ up products.
  const swiGluOf = (gateAndUp: string, width: number) => {
    const [gate, up] = g.node('Split', [gateAndUp, g.ints([width, width])], { axis: -1 }, 2) as [
      string,
      string,
    ];
    return gated(gate, up);
  };

  // Every expert runs on every row (batched MatMul over the expert axis); a dense [N, experts] gate matrix
  // (the chosen experts' weights, zero elsewhere) zeroes the unchosen ones.
  const denseExperts = (
    x: string,
    probabilities: string,
    topIds: string,
    gates: string,
    layer: number,
    width: number,
  ) => {
    const gateMatrix = g.op(
      'ScatterElements',
      [g.op('ConstantOfShape', [g.op('Shape', [probabilities])]), topIds, gates],
      { axis: 1 },
    );
    const { gateUp, down } = expertStacks(layer, width);
    // [E, N, hidden]
    const perExpert = store(g.op('MatMul', [swiGluOf(store(g.op('MatMul', [x, gateUp])), width), down]));
    const gatesByExpert = toCompute(
      g.op('Unsqueeze', [g.op('Transpose', [gateMatrix], { perm: [1, 0] }), g.ints([2])]),
    );
    const weighted = g.op('Mul', [perExpert, gatesByExpert]);
    if (!bf16) return g.op('ReduceSum', [weighted, g.ints([0])], { keepdims: 0 });
    // The chosen experts' rounded products, [N, k, hidden] in ascending expert id.
    const ascendingIds = g.node(
      'TopK',
      [topIds, g.ints([config.topK])],
      { axis: -1, largest: 0, sorted: 1 },
      2,
    )[0]!;
    const byRow = g.op('Transpose', [store(weighted)], { perm: [1, 0, 2] }); // [N, E, hidden]
    const index = g.op('Expand', [
      g.op('Unsqueeze', [ascendingIds, g.ints([2])]),
      g.op('Concat', [g.op('Shape', [ascendingIds]), g.ints([hidden])], { axis: 0 }),
    ]);
    return sumInOrder(g.op('GatherElements', [byRow, index], { axis: 1 }));
  };

  // Σ over the k axis of [N, k, hidden], left to right, each partial sum a stored bf16 activation.
  const sumInOrder = (terms: string) => {
    const parts = g.node('Split', [terms], { axis: 1 }, config.topK);
    let sum = parts[0]!;
    for (const part of parts.slice(1)) sum = store(g.op('Add', [sum, part]));
    return g.op('Reshape', [sum, g.ints([-1, hidden])]);
  };

  // The (row, k) pairs of a layer's routing: expert ids `[P]` (pair p = row · topK + k), each pair's row,
  // its place in (expert, pair) order and the pairs per expert `[E]`.
  const pairsByExpert = (topIds: string) => {
    const ids = g.op('Reshape', [topIds, g.ints([-1])]); // [P]; pair p = row · topK + k
    const pairCount = g.op('Shape', [ids]);
    const ones = g.op('Expand', [g.ints([1]), pairCount]);
    const pairIndex = g.op('CumSum', [ones, g.ints([0], true)], { exclusive: 1 });
    // (expert, pair) order: a sort of the distinct keys expert · P + p.
    const keys = g.op('Add', [g.op('Mul', [ids, pairCount]), pairIndex]);
    const [, order] = g.node('TopK', [keys, pairCount], { axis: 0, largest: 0, sorted: 1 }, 2) as [
      string,
      string,
    ];
    return {
      ids,
      row: g.op('Div', [pairIndex, g.ints([config.topK])]),
      sortedPosition: g.op('ScatterElements', [pairIndex, order, pairIndex], { axis: 0 }),
      counts: g.op('ScatterElements', [g.ints(new Array<number>(config.numExperts).fill(0)), ids, ones], {
        axis: 0,
        reduction: 'add',
      }),
    };
  };

  // The (row, k) pairs sorted by expert into one table of rows, where every expert with pairs gets one extra
  // row ahead of its own (row 0, never read back): each expert's MatMul then has 0 or at least 2 rows and
  // always takes onnxruntime's multi-row kernel, so a row's sums do not depend on how many rows share its
  // expert, i.e. on how the row was batched. A Split hands each expert its rows, one MatMul per expert and
  // projection computes them, and each pair reads its output back and is weighted and summed over k.
  const sparseExperts = (x: string, topIds: string, gates: string, layer: number, width: number) => {
    const experts = config.numExperts;
    const { ids, row, sortedPosition, counts } = pairsByExpert(topIds);
    const used = g.op('Min', [counts, g.ints([1])]);
    const sizes = g.op('Add', [counts, used]); // [E]: an expert's pairs and its extra row
    // A pair's table slot: the pairs before it plus the extra rows of the experts up to its own.
    const slot = g.op('Add', [
      sortedPosition,
      g.op('Gather', [g.op('CumSum', [used, g.ints([0], true)]), ids]),
    ]);
    const table = g.op('ScatterElements', [
      g.op('Expand', [g.ints([0]), g.op('ReduceSum', [sizes], { keepdims: 1 })]),
      slot,
      row,
    ]);
    const groups = g.node('Split', [g.op('Gather', [x, table]), sizes], { axis: 0 }, experts);
    const matrices = groups.map((_, expert) => expertMatrices(layer, expert, width));
    // Gate ‖ up per expert; SwiGLU once over all rows; down per expert.
    const gateUp = store(
      g.op(
        'Concat',
        groups.map((group, expert) => g.op('MatMul', [group, matrices[expert]!.gateUp])),
        { axis: 0 },
      ),
    );
    const activated = g.node('Split', [swiGluOf(gateUp, width), sizes], { axis: 0 }, experts);
    const outputs = store(
      g.op(
        'Concat',
        activated.map((rows, expert) => g.op('MatMul', [rows, matrices[expert]!.down])),
        { axis: 0 },
      ),
    );
    return sumOfPairs(g.op('Gather', [outputs, slot]), topIds, gates);
  };

  // Σ_k gate · expert output of each row, from the expert outputs of its pairs `[rows · topK, hidden]`
  // (pair p = row · topK + k); with bf16 activations each row's k rounded products in ascending expert id.
  const sumOfPairs = (pairOutputs: string, topIds: string, gates: string) => {
    const perPair = g.op('Reshape', [pairOutputs, g.ints([-1, config.topK, hidden])]);
    const weighted = g.op('Mul', [perPair, toCompute(g.op('Unsqueeze', [gates, g.ints([2])]))]);
    if (!bf16) return g.op('ReduceSum', [weighted, g.ints([1])], { keepdims: 0 });
    const kOrder = g.node(
      'TopK',
      [topIds, g.ints([config.topK])],
      { axis: -1, largest: 0, sorted: 1 },
      2,
    )[1]!;
    const index = g.op('Expand', [g.op('Unsqueeze', [kOrder, g.ints([2])]), g.op('Shape', [weighted])]);
    return sumInOrder(g.op('GatherElements', [store(weighted), index], { axis: 1 }));
  };

  // The pairs laid out as [experts, capacity] slots, capacity = the busiest expert's pair count (at least 2,
  // so every expert's MatMul takes onnxruntime's multi-row kernel and a row's sums do not depend on its
  // batch); slots no pair fills compute row 0 and are never read back. One batched MatMul per projection
  // runs all experts over their slots: a fixed number of nodes, work experts × capacity.
  const groupedExperts = (x: string, topIds: string, gates: string, layer: number, width: number) => {
    const experts = config.numExperts;
    const { ids, row, sortedPosition, counts } = pairsByExpert(topIds);
    // A pair's rank among its expert's pairs: its place in (expert, pair) order minus the pairs of lower experts.
    const rank = g.op('Sub', [
      sortedPosition,
      g.op('Gather', [g.op('CumSum', [counts, g.ints([0], true)], { exclusive: 1 }), ids]),
    ]);
    const capacity = g.op('Max', [g.op('ReduceMax', [counts], { keepdims: 1 }), g.ints([2])]); // [1]
    const slot = g.op('Add', [g.op('Mul', [ids, capacity]), rank]);
    const table = g.op('ScatterElements', [
      g.op('Expand', [g.ints([0]), g.op('Mul', [g.ints([experts]), capacity])]),
      slot,
      row,
    ]);
    const grouped = g.op('Reshape', [g.op('Gather', [x, table]), g.ints([experts, -1, hidden])]);
    const { gateUp, down } = expertStacks(layer, width);
    const outputs = store(g.op('MatMul', [swiGluOf(store(g.op('MatMul', [grouped, gateUp])), width), down]));
    return sumOfPairs(
      g.op('Gather', [g.op('Reshape', [outputs, g.ints([-1, hidden])]), slot]),
      topIds,
      gates,
    );
  };

  let x = store(
    g.op('Reshape', [
      g.op('Gather', [weight('model.embed_tokens.weight', [config.vocabSize, hidden]), inputIds]),
      g.ints([-1, hidden]),
    ]),
  );
  const routingOutputs: string[] = [];

  for (let layer = 0; layer < config.numLayers; layer++) {
    const prefix = `model.layers.${layer}`;
    const bias = config.attentionBias;
    // --- self-attention ---
    const normed = rmsNorm(x, `${prefix}.input_layernorm.weight`, hidden);
    let q = g.op('Reshape', [
      linear(normed, `${prefix}.self_attn.q_proj`, queryWidth, hidden, bias),
      g.ints([-1, heads, headDim]),
    ]);
    let k = g.op('Reshape', [
      linear(normed, `${prefix}.self_attn.k_proj`, keyValueWidth, hidden, bias),
      g.ints([-1, kvHeads, headDim]),
    ]);
    const v = linear(normed, `${prefix}.self_attn.v_proj`, keyValueWidth, hidden, bias);
    if (config.qkNorm) {
      q = rmsNorm(q, `${prefix}.self_attn.q_norm.weight`, headDim);
      k = rmsNorm(k, `${prefix}.self_attn.k_norm.weight`, headDim);
    }
    const queries = g.op('Reshape', [toHeads(rope(q), heads), g.ints([0, kvHeads, -1, headDim])]);
    const pastKey = g.input(GRAPH_IO.pastKey(layer), 'float32', ['batch', kvHeads, 'past', headDim]);
    const pastValue = g.input(GRAPH_IO.pastValue(layer), 'float32', ['batch', kvHeads, 'past', headDim]);
    // The cache stays float32 on the host; float16 values round-trip through it exactly.
    const present = (name: string, past: string, fresh: string) => {
      const joined = half16
        ? g.op('Concat', [toCompute(past), fresh], { axis: 2 })
        : g.named(name, 'Concat', [past, fresh], { axis: 2 });
      if (half16) g.named(name, 'Cast', [joined], { to: 1 });
      g.output(name, 'float32', ['batch', kvHeads, 'total', headDim]);
      return joined;
    };
    const keys = present(GRAPH_IO.presentKey(layer), pastKey, toHeads(rope(k), kvHeads));
    const values = present(GRAPH_IO.presentValue(layer), pastValue, toHeads(v, kvHeads));

    // Scores in the compute type, mask and softmax in float32 (HF's softmax(dtype=float32)).
    const scores = g.op('Add', [
      toFloat(
        store(
          g.op('Mul', [
            store(g.op('MatMul', [queries, g.op('Transpose', [keys], { perm: [0, 1, 3, 2] })])),
            scale,
          ]),
        ),
      ),
      mask,
    ]);
    const attended = store(
      g.op('MatMul', [store(toCompute(g.op('Softmax', [scores], { axis: -1 }))), values]),
    );
    const merged = g.op('Reshape', [
      g.op('Transpose', [g.op('Reshape', [attended, g.ints([0, heads, -1, headDim])])], {
        perm: [0, 2, 1, 3],
      }),
      g.ints([-1, queryWidth]),
    ]);
    x = store(g.op('Add', [x, linear(merged, `${prefix}.self_attn.o_proj`, hidden, queryWidth, bias)]));

    // --- MLP ---
    const mlpInput = rmsNorm(x, `${prefix}.post_attention_layernorm.weight`, hidden);
    let mlpOutput: string;
    if (moeLayers.includes(layer)) {
      const probabilities = g.op(
        'Softmax',
        [toFloat(linear(mlpInput, `${prefix}.mlp.gate`, config.numExperts, hidden))],
        { axis: -1 },
      );
      const [topValues, topIds] = g.node(
        'TopK',
        [probabilities, g.ints([config.topK])],
        { axis: -1, largest: 1, sorted: 1 },
        2,
      ) as [string, string];
      routingOutputs.push(topIds);
      const gates = config.normTopKProb
        ? g.op('Div', [topValues, g.op('ReduceSum', [topValues, g.ints([-1])], { keepdims: 1 })])
        : topValues;
      const width = config.moeIntermediateSize;
      mlpOutput =
        expertCompute === 'sparse'
          ? sparseExperts(mlpInput, topIds, gates, layer, width)
          : expertCompute === 'grouped'
            ? groupedExperts(mlpInput, topIds, gates, layer, width)
            : denseExperts(mlpInput, probabilities, topIds, gates, layer, width);
    } else {
      mlpOutput = swiGlu(mlpInput, `${prefix}.mlp`, config.intermediateSize);
    }
    x = store(g.op('Add', [x, mlpOutput]));
  }

  const finalHidden = g.op('Gather', [rmsNorm(x, 'model.norm.weight', hidden), logitRows], { axis: 0 });
  const headName = config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  const logits = store(
    g.op('Gemm', [finalHidden, weight(headName, [config.vocabSize, hidden])], { transB: 1 }),
  );
  g.named(GRAPH_IO.logits, half16 ? 'Cast' : 'Identity', [logits], half16 ? { to: 1 } : {});
  g.output(GRAPH_IO.logits, 'float32', ['rows', config.vocabSize]);
  if (routingOutputs.length > 0) {
    g.named(GRAPH_IO.routing, 'Concat', routingOutputs, { axis: 1 });
    g.output(GRAPH_IO.routing, 'int64', ['tokens', moeLayers.length * config.topK]);
  }
  return g.build(
    'moerl_qwen3_moe',
    'Qwen3-MoE forward pass with KV cache and routing capture, built by @moerl/backend-onnx',
  );
}
