import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { activateTfjsBackend } from './tfjs-runtime.js';

// tfjs-backend-wasm's own kernel, kept before activation puts the SIMD one in front of it.
const tfjsKernel = tf.getKernel('BatchMatMul', 'wasm')!;

beforeAll(async () => {
  await activateTfjsBackend('tfjs-wasm');
});

const f = Math.fround;

/** tfjs-wasm's scalar loop written out: float32 sums over k in blocks of 48, each block's sum added to the total. */
function blockedProduct(
  a: Float32Array,
  b: Float32Array,
  [batch, m, n, k]: readonly number[],
  transposeA: boolean,
  transposeB: boolean,
): Float32Array {
  const out = new Float32Array(batch! * m! * n!);
  for (let s = 0; s < batch!; s++) {
    for (let i = 0; i < m!; i++) {
      for (let j = 0; j < n!; j++) {
        let total = 0;
        for (let k0 = 0; k0 < k!; k0 += 48) {
          let sum = 0;
          for (let kk = k0; kk < Math.min(k0 + 48, k!); kk++) {
            const x = a[s * m! * k! + (transposeA ? kk * m! + i : i * k! + kk)]!;
            const y = b[s * k! * n! + (transposeB ? j * k! + kk : kk * n! + j)]!;
            sum = f(sum + f(x * y));
          }
          total = f(total + sum);
        }
        out[(s * m! + i) * n! + j] = total;
      }
    }
  }
  return out;
}

const sameBits = (x: Float32Array, y: Float32Array) =>
  x.length === y.length && x.every((value, index) => Object.is(value, y[index]));

describe('the SIMD batched product on tfjs-wasm', () => {
  // [batch, m, n, k]: n across vectors (tails of 1–3 columns, 16-column blocks), k across 48-blocks.
  const shapes = [
    [3, 5, 7, 16],
    [2, 40, 20, 16],
    [2, 40, 16, 20],
    [4, 9, 13, 48],
    [2, 6, 5, 100],
    [1, 3, 37, 200],
    [5, 1, 1, 1],
  ];
  it.each(shapes)('gives tfjs’s own kernel’s bits, every transpose, [%i, %i, %i, %i]', (...shape) => {
    const [batch, m, n, k] = shape as [number, number, number, number];
    const values = (length: number) =>
      Float32Array.from({ length }, (_, index) => (index % 11 === 3 ? -0 : Math.sin(index * 12.9898) * 3));
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        // A flag-free single product is XNNPACK's, with its own summation order.
        if (batch === 1 && !transposeA && !transposeB) continue;
        const a = tf.tensor3d(values(batch * m * k), transposeA ? [batch, k, m] : [batch, m, k]);
        const b = tf.tensor3d(values(batch * k * n).reverse(), transposeB ? [batch, n, k] : [batch, k, n]);
        const ours = tf.matMul(a, b, transposeA, transposeB);
        const theirs = tf.engine().makeTensorFromTensorInfo(
          tfjsKernel.kernelFunc({
            inputs: { a, b },
            backend: tf.backend(),
            attrs: { transposeA, transposeB },
          }) as tf.TensorInfo,
        );
        const expected = blockedProduct(
          a.dataSync() as Float32Array,
          b.dataSync() as Float32Array,
          shape,
          transposeA,
          transposeB,
        );
        expect(ours.shape).toEqual([batch, m, n]);
        expect(sameBits(ours.dataSync() as Float32Array, expected)).toBe(true);
        expect(sameBits(theirs.dataSync() as Float32Array, expected)).toBe(true);
        tf.dispose([a, b, ours, theirs]);
      }
    }
  });

  it('keeps rank-4 batches and leaves flag-free single products to XNNPACK', () => {
    const a = tf.randomNormal([3, 2, 4, 8], 0, 1, 'float32', 1);
    const b = tf.randomNormal([3, 2, 8, 5], 0, 1, 'float32', 2);
    const product = tf.matMul(a, b);
    expect(product.shape).toEqual([3, 2, 4, 5]);
    const expected = blockedProduct(
      a.dataSync() as Float32Array,
      b.dataSync() as Float32Array,
      [6, 4, 5, 8],
      false,
      false,
    );
    expect(sameBits(product.dataSync() as Float32Array, expected)).toBe(true);
    // Shapes that do not fit still get tfjs's own message.
    expect(() => tf.matMul(tf.ones([2, 3, 4]), tf.ones([2, 5, 6]))).toThrow(/inner shapes/);
    const single = tf.matMul(tf.ones([2, 3]), tf.ones([3, 4]));
    expect([...single.dataSync()]).toEqual(Array(8).fill(3));
    tf.dispose([a, b, product, single]);
  });
});
