import * as tf from '@tensorflow/tfjs-core';
import { blockProducts, blockTransposedProducts } from '../runtime/heap-block-products.js';
import { matMul } from '../runtime/mat-mul.js';

/** One expert's projections, `nn.Linear` layout `[out, in]`. */
export interface ExpertWeights {
  readonly gate: tf.Tensor2D;
  readonly up: tf.Tensor2D;
  readonly down: tf.Tensor2D;
}

/** An expert and the rows routed to it. */
export interface RoutedExpert {
  /** Rows of the layer input routed to this expert. */
  readonly rows: Int32Array;
  /** Each row's gate in the flattened `[rows × experts, 1]` gates. */
  readonly gateIndex: Int32Array;
  readonly weights: ExpertWeights;
}

type Save = (tensors: tf.Tensor[]) => void;
type Projections = [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];

/** `[n, 1]` int32 indices for gatherND / scatterND. */
const indexTensor = (indices: Int32Array) => tf.tensor2d(indices, [indices.length, 1], 'int32');

/** `make()`, made on the first call and kept: pieces only some backends need. */
function once<T>(make: () => T): () => T {
  let made: T | undefined;
  return () => (made ??= make());
}

/** Every expert's part, concatenated in expert order. */
function concatenated(parts: readonly Int32Array[]): Int32Array {
  const all = new Int32Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return all;
}

/**
 * A MoE layer's experts over the rows routed to them, as a single taped op:
 * `out[r] = Σ_e gates[r, e] · down_e(silu(gate_e(x[r])) · up_e(x[r]))` over the experts `e` of row `r`
 * (`[input rows, hidden]`). Gradients flow to `input`, `flatGates` (`[rows × experts, 1]`) and every
 * expert's three weights. `experts` lists only experts with rows.
 *
 * The (row, expert) pairs are laid out expert after expert ("pair order"). Only the products run per
 * expert, each on its own rows; everything elementwise (SwiGLU, the gates, their derivatives) runs once
 * over all pairs. Why: on tfjs-backend-wasm a kernel costs ~5–10 µs before any arithmetic, so with 64
 * experts, per-expert elementwise kernels, full-size per-expert outputs and gradients for the tape to add
 * up, and the tape's copies of per-expert activations were most of a training step's growth over top-8
 * of 8. Pieces are taken with gathers, not slices (wasm's Slice took ~1 ms for 64 rows of 4096). Every
 * value is computed as in the per-expert form, so results are the same bit for bit.
 */
export function routedExperts(
  input: tf.Tensor2D,
  flatGates: tf.Tensor2D,
  experts: readonly RoutedExpert[],
): tf.Tensor2D {
  const [outputRows, hidden] = input.shape;
  const gateRows = flatGates.shape[0];
  const expertRows = experts.map((expert) => expert.rows);
  const allRows = concatenated(expertRows);
  const allGates = concatenated(experts.map((expert) => expert.gateIndex));
  // Each expert's pairs: a run of pair order.
  let start = 0;
  const ranges = experts.map((expert) => {
    const first = start;
    start += expert.rows.length;
    return Int32Array.from({ length: expert.rows.length }, (_, offset) => first + offset);
  });
  // Index tensors are made where used: the forward scope disposes what it does not save, and saved
  // tensors are copied by the engine.
  const pieces = (from: tf.Tensor2D, indices: readonly (Int32Array | tf.Tensor2D)[]) =>
    indices.map(
      (part) => tf.gatherND(from, part instanceof Int32Array ? indexTensor(part) : part) as tf.Tensor2D,
    );
  const sizes = expertRows.map((rows) => rows.length);
  const weights = experts.flatMap(({ weights: w }) => [w.gate, w.up, w.down]);
  const run = tf.customGrad(((...args: unknown[]) => {
    const save = args.pop() as Save;
    const [x, gates, ...flat] = args as tf.Tensor2D[];
    const projections = experts.map((_, e) => flat.slice(3 * e, 3 * e + 3) as Projections);
    // On tfjs-wasm the products read each expert's block of a layer-wide tensor in pair order in place
    // (`blockProducts`: no gather, product or concat piece per expert); elsewhere, and if tfjs-wasm's
    // internals are not what that expects, a piece and a product per expert.
    const onWasm = tf.getBackend() === 'wasm';
    const routedInPairOrder = once(() => tf.gatherND(x!, indexTensor(allRows)) as tf.Tensor2D);
    const routed = once(() => pieces(x!, expertRows));
    // Each expert's rows by its `which` projection (`transposed`: by the weight's transpose, nn.Linear's
    // forward), given the layer-wide tensor in pair order (`all`) and its per-expert pieces (`parts`).
    const products = (
      all: () => tf.Tensor2D,
      parts: () => tf.Tensor2D[],
      which: 0 | 1 | 2,
      transposed: boolean,
    ): tf.Tensor2D =>
      (onWasm
        ? blockProducts(
            all(),
            sizes,
            projections.map((weights) => weights[which]),
            transposed,
          )
        : undefined) ??
      (tf.concat(
        parts().map((part, e) => matMul(part, projections[e]![which], false, transposed)),
        0,
      ) as tf.Tensor2D);
    const project = (all: () => tf.Tensor2D, parts: () => tf.Tensor2D[], which: 0 | 1 | 2) =>
      products(all, parts, which, true);
    const gated = project(routedInPairOrder, routed, 0);
    const lifted = project(routedInPairOrder, routed, 1);
    const activated = tf.mul(tf.mul(gated, tf.sigmoid(gated)), lifted) as tf.Tensor2D;
    const output = project(
      () => activated,
      () => pieces(activated, ranges),
      2,
    );
    const weight = tf.gatherND(gates!, indexTensor(allGates)) as tf.Tensor2D;
    // Five layer-wide tensors, none per expert.
    save([x!, gated, lifted, output, weight]);
    return {
      value: tf.scatterND(indexTensor(allRows), tf.mul(output, weight), [outputRows, hidden]),
      gradFunc: (dy: tf.Tensor2D, kept: tf.Tensor[]) => {
        const [xs, g, u, o, w] = kept as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        const allRowIds = indexTensor(allRows);
        const dOut = tf.gatherND(dy, allRowIds) as tf.Tensor2D;
        const dWeight = tf.sum(tf.mul(dOut, o), 1, true);
        const dOutWeighted = tf.mul(dOut, w) as tf.Tensor2D;
        const sigmoid = tf.sigmoid(g);
        const silu = tf.mul(g, sigmoid) as tf.Tensor2D;
        const activated = tf.mul(silu, u) as tf.Tensor2D;
        // Per-expert pieces, made only where the in-place products (tfjs-wasm) are not used.
        const rangeIds = once(() => ranges.map(indexTensor));
        const dOutputs = once(() => pieces(dOutWeighted, rangeIds()));
        // Products by the weights as they are (no transpose), as in the forward.
        const byWeights = (all: tf.Tensor2D, parts: () => tf.Tensor2D[], which: 0 | 1 | 2) =>
          products(() => all, parts, which, false);
        const dActivated = byWeights(dOutWeighted, dOutputs, 2);
        const dLifted = tf.mul(dActivated, silu) as tf.Tensor2D;
        // silu'(g) = σ(g) · (1 + g · (1 − σ(g)))
        const siluSlope = tf.mul(sigmoid, tf.add(1, tf.mul(g, tf.sub(1, sigmoid))));
        const dGated = tf.mul(tf.mul(dActivated, u), siluSlope) as tf.Tensor2D;
        const dGateds = once(() => pieces(dGated, rangeIds()));
        const dLifteds = once(() => pieces(dLifted, rangeIds()));
        // Σ over the two projections, pair by pair (the same sums as per expert, then concatenated).
        const dRouted = tf.add(byWeights(dGated, dGateds, 0), byWeights(dLifted, dLifteds, 1));
        // Weight gradients `pieceᵀ · rows`: in place on tfjs-wasm, else per expert.
        const inputsInPairOrder = once(() => tf.gatherND(xs, allRowIds) as tf.Tensor2D);
        const inputs = once(() => pieces(xs, expertRows));
        const activations = once(() => pieces(activated, rangeIds()));
        const weightGradients = (
          from: tf.Tensor2D,
          parts: () => tf.Tensor2D[],
          rows: () => tf.Tensor2D,
          rowParts: () => tf.Tensor2D[],
        ) =>
          (onWasm ? blockTransposedProducts(from, rows(), sizes) : undefined) ??
          parts().map((part, e) => matMul(part, rowParts()[e]!, true, false));
        const dGates = weightGradients(dGated, dGateds, inputsInPairOrder, inputs);
        const dUps = weightGradients(dLifted, dLifteds, inputsInPairOrder, inputs);
        const dDowns = weightGradients(dOutWeighted, dOutputs, () => activated, activations);
        const dProjections = experts.flatMap((_, e) => [dGates[e]!, dUps[e]!, dDowns[e]!]);
        return [
          tf.scatterND(allRowIds, dRouted, [outputRows, hidden]),
          tf.scatterND(indexTensor(allGates), dWeight, [gateRows, 1]),
          ...dProjections,
        ];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return run(input, flatGates, ...weights) as tf.Tensor2D;
}
