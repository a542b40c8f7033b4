import * as tf from '@tensorflow/tfjs-core';
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
const SAVED_PER_EXPERT = 5;

/** Every expert's part of one `[n, 1]`-index tensor, in expert order. */
function indexTensor(parts: readonly Int32Array[]): tf.Tensor2D {
  const all = new Int32Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return tf.tensor2d(all, [all.length, 1], 'int32');
}

/**
 * A MoE layer's experts over the rows routed to them, as a single taped op:
 * `out[r] = Σ_e gates[r, e] · down_e(silu(gate_e(x[r])) · up_e(x[r]))` over the experts `e` of row `r`
 * (`[input rows, hidden]`). Gradients flow to `input`, `flatGates` (`[rows × experts, 1]`) and every
 * expert's three weights. `experts` lists only experts with rows.
 *
 * Why one op for the layer with a written-out backward: taped per expert, each expert's output and its
 * input and gate gradients were full-size tensors (`[rows, hidden]`, `[rows × experts, 1]`) scattered and
 * then added up by the tape, one per expert, plus the tape's own copies; with 64 experts those fixed costs
 * were most of a training step's growth over top-8 of 8. Here each expert computes on its own rows only,
 * and one scatter per result adds the pieces (in expert order, as the per-expert sum did).
 */
export function routedExperts(
  input: tf.Tensor2D,
  flatGates: tf.Tensor2D,
  experts: readonly RoutedExpert[],
): tf.Tensor2D {
  const [outputRows, hidden] = input.shape;
  const gateRows = flatGates.shape[0];
  const rowIndices = () =>
    experts.map((expert) => tf.tensor2d(expert.rows, [expert.rows.length, 1], 'int32'));
  const allRows = () => indexTensor(experts.map((expert) => expert.rows));
  const weights = experts.flatMap(({ weights: w }) => [w.gate, w.up, w.down]);
  const run = tf.customGrad(((...args: unknown[]) => {
    const save = args.pop() as Save;
    const [x, gates, ...projections] = args as tf.Tensor2D[];
    const saved: tf.Tensor[] = [];
    const rowIds = rowIndices();
    const gateIds = experts.map((expert) =>
      tf.tensor2d(expert.gateIndex, [expert.gateIndex.length, 1], 'int32'),
    );
    const pieces = experts.map((_, e) => {
      const [gate, up, down] = projections.slice(3 * e, 3 * e + 3) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
      const routed = tf.gatherND(x!, rowIds[e]!) as tf.Tensor2D;
      const gated = matMul(routed, gate, false, true);
      const lifted = matMul(routed, up, false, true);
      const activated = tf.mul(tf.mul(gated, tf.sigmoid(gated)), lifted) as tf.Tensor2D;
      const output = matMul(activated, down, false, true);
      const weight = tf.gatherND(gates!, gateIds[e]!) as tf.Tensor2D;
      saved.push(routed, gated, lifted, output, weight);
      return tf.mul(output, weight);
    });
    // Only the activations: the engine clones every saved tensor, and index tensors are cheaper to make
    // again from the host arrays (the forward scope disposes anything not saved before the backward runs).
    save(saved);
    return {
      value: tf.scatterND(allRows(), tf.concat(pieces, 0), [outputRows, hidden]),
      gradFunc: (dy: tf.Tensor2D, kept: tf.Tensor[]) => {
        const count = experts.length;
        const rowIds = rowIndices();
        const dRouted: tf.Tensor[] = [];
        const dWeights: tf.Tensor[] = [];
        const dProjections: tf.Tensor[] = [];
        for (let e = 0; e < count; e++) {
          const [xs, g, u, o, w] = kept.slice(SAVED_PER_EXPERT * e, SAVED_PER_EXPERT * (e + 1)) as [
            tf.Tensor2D,
            tf.Tensor2D,
            tf.Tensor2D,
            tf.Tensor2D,
            tf.Tensor2D,
          ];
          const [gate, up, down] = projections.slice(3 * e, 3 * e + 3) as [
            tf.Tensor2D,
            tf.Tensor2D,
            tf.Tensor2D,
          ];
          const dOut = tf.gatherND(dy, rowIds[e]!) as tf.Tensor2D;
          dWeights.push(tf.sum(tf.mul(dOut, o), 1, true));
          const dOutput = tf.mul(dOut, w) as tf.Tensor2D;
          const sigmoid = tf.sigmoid(g);
          const silu = tf.mul(g, sigmoid) as tf.Tensor2D;
          const dActivated = matMul(dOutput, down);
          const dLifted = tf.mul(dActivated, silu) as tf.Tensor2D;
          // silu'(g) = σ(g) · (1 + g · (1 − σ(g)))
          const siluSlope = tf.mul(sigmoid, tf.add(1, tf.mul(g, tf.sub(1, sigmoid))));
          const dGated = tf.mul(tf.mul(dActivated, u), siluSlope) as tf.Tensor2D;
          dRouted.push(tf.add(matMul(dGated, gate), matMul(dLifted, up)));
          dProjections.push(
            matMul(dGated, xs, true, false),
            matMul(dLifted, xs, true, false),
            matMul(dOutput, tf.mul(silu, u), true, false),
          );
        }
        return [
          tf.scatterND(allRows(), tf.concat(dRouted, 0), [outputRows, hidden]),
          tf.scatterND(indexTensor(experts.map((expert) => expert.gateIndex)), tf.concat(dWeights, 0), [
            gateRows,
            1,
          ]),
          ...dProjections,
        ];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return run(input, flatGates, ...weights) as tf.Tensor2D;
}
