import { createRandom } from '@moerl/core';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { activateTfjsBackend, type TfjsBackendName } from '../runtime/tfjs-runtime.js';
import { swiGlu } from './layers.js';
import { type RoutedExpert, routedExperts } from './routed-experts.js';

const ROWS = 7;
const HIDDEN = 6;
const WIDTH = 5;
const EXPERTS = 4;

function randomTensor(shape: [number, number], seed: string): tf.Tensor2D {
  const random = createRandom(11).fork(seed);
  return tf.tensor2d(
    Float32Array.from({ length: shape[0] * shape[1] }, () => random.nextFloat() * 2 - 1),
    shape,
  );
}

/**
 * Rows 0–6 over 4 experts, one or two experts a row: expert 3 gets no row, expert 1 a single one (a
 * one-row product). Listed out of id order below, as nothing in the op may depend on it.
 */
const routing: Record<number, number[]> = { 0: [0, 2, 3, 5, 6], 1: [4], 2: [0, 1, 3, 4, 6] };

/**
 * The same layer by tfjs autodiff: every expert on every row, its output kept where routed and weighted by
 * its gate column (an independent formula: no gathers, no written-out backward).
 */
function denseReference(
  x: tf.Tensor2D,
  flatGates: tf.Tensor2D,
  experts: readonly RoutedExpert[],
  ids: number[],
) {
  const gates = tf.reshape(flatGates, [ROWS, EXPERTS]);
  let sum: tf.Tensor = tf.zeros([ROWS, HIDDEN]);
  experts.forEach((expert, index) => {
    const mask = new Float32Array(ROWS);
    for (const row of expert.rows) mask[row] = 1;
    const pick = new Float32Array(EXPERTS);
    pick[ids[index]!] = 1;
    const column = tf.matMul(gates, tf.tensor2d(pick, [EXPERTS, 1]));
    const { gate, up, down } = expert.weights;
    sum = tf.add(sum, tf.mul(tf.mul(swiGlu(x, gate, up, down), column), tf.tensor2d(mask, [ROWS, 1])));
  });
  return sum;
}

describe.each(['tfjs-wasm', 'tfjs-cpu'] as TfjsBackendName[])('routedExperts (%s)', (backend) => {
  it('matches the dense formula, and so do its gradients for the input, the gates and every weight', async () => {
    await activateTfjsBackend(backend);
    tf.tidy(() => {
      const x = randomTensor([ROWS, HIDDEN], 'x');
      const flatGates = randomTensor([ROWS * EXPERTS, 1], 'gates');
      const ids = [2, 0, 1];
      const experts: RoutedExpert[] = ids.map((id) => {
        const rows = Int32Array.from(routing[id]!);
        return {
          rows,
          gateIndex: rows.map((row) => row * EXPERTS + id),
          weights: {
            gate: randomTensor([WIDTH, HIDDEN], `gate${id}`),
            up: randomTensor([WIDTH, HIDDEN], `up${id}`),
            down: randomTensor([HIDDEN, WIDTH], `down${id}`),
          },
        };
      });
      const coefficients = randomTensor([ROWS, HIDDEN], 'loss');
      const weights = experts.flatMap(({ weights: w }) => [w.gate, w.up, w.down]);
      const rebuilt = (inputs: tf.Tensor[]) =>
        experts.map((expert, e) => ({
          ...expert,
          weights: {
            gate: inputs[2 + 3 * e] as tf.Tensor2D,
            up: inputs[3 + 3 * e] as tf.Tensor2D,
            down: inputs[4 + 3 * e] as tf.Tensor2D,
          },
        }));
      const loss =
        (layer: (inputs: tf.Tensor[]) => tf.Tensor) =>
        (...inputs: tf.Tensor[]) =>
          tf.sum(tf.mul(layer(inputs), coefficients)) as tf.Scalar;
      const op = (inputs: tf.Tensor[]) =>
        routedExperts(inputs[0] as tf.Tensor2D, inputs[1] as tf.Tensor2D, rebuilt(inputs));
      const reference = (inputs: tf.Tensor[]) =>
        denseReference(inputs[0] as tf.Tensor2D, inputs[1] as tf.Tensor2D, rebuilt(inputs), ids);
      const all = [x, flatGates, ...weights];

      const value = op(all).dataSync();
      const expected = reference(all).dataSync();
      for (let i = 0; i < expected.length; i++) expect(value[i]).toBeCloseTo(expected[i]!, 5);

      const grads = tf.grads(loss(op))(all);
      const expectedGrads = tf.grads(loss(reference))(all);
      grads.forEach((gradient, index) => {
        const actual = gradient.dataSync();
        const wanted = expectedGrads[index]!.dataSync();
        expect(actual.length).toBe(wanted.length);
        for (let i = 0; i < wanted.length; i++) expect(actual[i]).toBeCloseTo(wanted[i]!, 5);
      });
      // Expert 3 has no row: its gate column gets no gradient.
      const gateGradient = grads[1]!.dataSync();
      for (let row = 0; row < ROWS; row++) expect(gateGradient[row * EXPERTS + 3]).toBe(0);
    });
  });
});
