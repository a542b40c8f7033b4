import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { activateTfjsBackend } from '../runtime/tfjs-runtime.js';
import { gatherRows } from './row-ops.js';

beforeAll(async () => {
  await activateTfjsBackend('tfjs-wasm');
});

describe('row ops with gradients (wasm)', () => {
  it('gatherRows picks rows; its gradient adds up rows picked twice', () => {
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
    const rows = Int32Array.of(2, 0, 2);
    expect(gatherRows(x, rows).arraySync()).toEqual([
      [5, 6],
      [1, 2],
      [5, 6],
    ]);
    // d/dx Σ w ⊙ x[rows] with w = [[1, 10], [100, 1000], [2, 20]]: row 2 gets rows 0 and 2 of w.
    const weights = tf.tensor2d([1, 10, 100, 1000, 2, 20], [3, 2]);
    const gradient = tf.grad((input: tf.Tensor) =>
      tf.sum(tf.mul(gatherRows(input as tf.Tensor2D, rows), weights)),
    )(x);
    expect(gradient.arraySync()).toEqual([
      [100, 1000],
      [0, 0],
      [3, 30],
    ]);
  });
});
