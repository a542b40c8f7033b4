import * as tf from '@tensorflow/tfjs-core';
import { matMul } from '../runtime/mat-mul.js';

/** One expert's projections, `nn.Linear` layout `[out, in]`. */
export interface ExpertWeights {
  readonly gate: tf.Tensor2D;
  readonly up: tf.Tensor2D;
  readonly down: tf.Tensor2D;
}

type Save = (tensors: tf.Tensor[]) => void;

/**
 * One expert over the rows routed to it, as a single taped op:
 * `out[rows] += gates[gateIndex] · down(silu(gate(x[rows])) · up(x[rows]))`, zero elsewhere
 * (`[input rows, hidden]`). Gradients flow to `input`, `flatGates` (`[rows × experts, 1]`) and the three
 * weights.
 *
 * Why one op with a written-out backward: taped, the same arithmetic is a dozen kernels forward, each
 * saving copies of its inputs for the tape, and two dozen more backward (reshapes, casts, sigmoid again).
 * With 64 experts × 3 MoE layers those fixed costs were most of a training step's growth over top-8 of 8.
 * The kernels inside run untaped; the backward below recomputes only the activation.
 */
export function routedExpert(
  input: tf.Tensor2D,
  flatGates: tf.Tensor2D,
  rows: Int32Array,
  gateIndex: Int32Array,
  weights: ExpertWeights,
): tf.Tensor2D {
  const [outputRows, hidden] = input.shape;
  const gateRows = flatGates.shape[0];
  const rowIndices = tf.tensor2d(rows, [rows.length, 1], 'int32');
  const gateIndices = tf.tensor2d(gateIndex, [gateIndex.length, 1], 'int32');
  const run = tf.customGrad(((
    x: tf.Tensor2D,
    gates: tf.Tensor2D,
    gate: tf.Tensor2D,
    up: tf.Tensor2D,
    down: tf.Tensor2D,
    save: Save,
  ) => {
    const routed = tf.gatherND(x, rowIndices) as tf.Tensor2D;
    const gated = matMul(routed, gate, false, true);
    const lifted = matMul(routed, up, false, true);
    const activated = tf.mul(tf.mul(gated, tf.sigmoid(gated)), lifted) as tf.Tensor2D;
    const output = matMul(activated, down, false, true);
    const weight = tf.gatherND(gates, gateIndices) as tf.Tensor2D;
    save([rowIndices, gateIndices, routed, gated, lifted, output, weight]);
    return {
      value: tf.scatterND(rowIndices, tf.mul(output, weight), [outputRows, hidden]),
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [rowIds, gateIds, xs, g, u, o, w] = saved as [
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor2D,
        ];
        const dOut = tf.gatherND(dy, rowIds) as tf.Tensor2D;
        const dWeight = tf.sum(tf.mul(dOut, o), 1, true);
        const dOutput = tf.mul(dOut, w) as tf.Tensor2D;
        const sigmoid = tf.sigmoid(g);
        const silu = tf.mul(g, sigmoid) as tf.Tensor2D;
        const dActivated = matMul(dOutput, down);
        const dLifted = tf.mul(dActivated, silu) as tf.Tensor2D;
        // silu'(g) = σ(g) · (1 + g · (1 − σ(g)))
        const siluSlope = tf.mul(sigmoid, tf.add(1, tf.mul(g, tf.sub(1, sigmoid))));
        const dGated = tf.mul(tf.mul(dActivated, u), siluSlope) as tf.Tensor2D;
        const dRouted = tf.add(matMul(dGated, gate), matMul(dLifted, up));
        return [
          tf.scatterND(rowIds, dRouted, [outputRows, hidden]),
          tf.scatterND(gateIds, dWeight, [gateRows, 1]),
          matMul(dGated, xs, true, false),
          matMul(dLifted, xs, true, false),
          matMul(dOutput, tf.mul(silu, u), true, false),
        ];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return run(input, flatGates, weights.gate, weights.up, weights.down) as tf.Tensor2D;
}
