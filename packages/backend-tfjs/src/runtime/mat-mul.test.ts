import { createRandom } from '@moerl/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { matMul } from './mat-mul.js';
import { activateTfjsBackend } from './tfjs-runtime.js';

afterAll(async () => {
  await activateTfjsBackend('tfjs-wasm');
});

/** `op(a) · op(b)` in float64, row-major, written out. */
function naive(
  a: Float32Array,
  [aRows, aColumns]: [number, number],
  b: Float32Array,
  [bRows, bColumns]: [number, number],
  transposeA: boolean,
  transposeB: boolean,
): number[] {
  const m = transposeA ? aColumns : aRows;
  const k = transposeA ? aRows : aColumns;
  const n = transposeB ? bRows : bColumns;
  const at = (i: number, j: number) => (transposeA ? a[j * aColumns + i]! : a[i * aColumns + j]!);
  const bt = (i: number, j: number) => (transposeB ? b[j * bColumns + i]! : b[i * bColumns + j]!);
  const out: number[] = [];
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += at(i, p) * bt(p, j);
      out.push(sum);
    }
  }
  return out;
}

describe.each(['tfjs-wasm', 'tfjs-cpu'] as const)('matMul on %s', (backend) => {
  it('equals op(a)·op(b) for every combination of transpose flags', async () => {
    await activateTfjsBackend(backend);
    const random = createRandom(3);
    const values = (size: number) => Float32Array.from({ length: size }, () => random.nextNormal());
    for (const [transposeA, transposeB] of [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ] as const) {
      const aShape: [number, number] = transposeA ? [5, 7] : [7, 5];
      const bShape: [number, number] = transposeB ? [3, 5] : [5, 3];
      const a = values(35);
      const b = values(15);
      const got = tf.tidy(() =>
        matMul(tf.tensor2d(a, aShape), tf.tensor2d(b, bShape), transposeA, transposeB).dataSync(),
      );
      const want = naive(a, aShape, b, bShape, transposeA, transposeB);
      expect(got.length).toBe(want.length);
      for (const [index, value] of want.entries()) expect(got[index]).toBeCloseTo(value, 4);
    }
  });

  it('keeps batched (rank 3) products and their flags', async () => {
    await activateTfjsBackend(backend);
    const got = tf.tidy(() => {
      const a = tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]);
      return matMul(a, a, false, true).arraySync();
    });
    expect(got).toEqual([
      [
        [5, 11],
        [11, 25],
      ],
      [
        [61, 83],
        [83, 113],
      ],
    ]);
  });
});
