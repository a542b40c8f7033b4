import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { blockProducts, blockTransposedProducts } from './heap-block-products.js';
import { activateTfjsBackend } from './tfjs-runtime.js';

afterAll(async () => {
  await activateTfjsBackend('tfjs-wasm');
});

const bits = (tensor: tf.Tensor) =>
  [...tensor.dataSync()].map((value) => (Object.is(value, -0) ? '-0' : value));

describe('blockProducts', () => {
  it('gives the bits of one tf.matMul per block, concatenated, and leaves no tensor behind (tfjs-wasm)', async () => {
    await activateTfjsBackend('tfjs-wasm');
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const sizes = [3, 0, 1, 7, 2];
      const rows = sizes.reduce((sum, size) => sum + size, 0);
      const a = tf.tensor2d(
        Float32Array.from({ length: rows * 20 }, (_, index) => Math.sin(index * 1.7) * 4),
        [rows, 20],
      );
      const matrices = sizes.map(
        (_, block) => tf.randomNormal([20, 9], 0, 1, 'float32', block) as tf.Tensor2D,
      );
      const product = blockProducts(a, sizes, matrices)!;
      expect(product.shape).toEqual([rows, 9]);
      const parts = tf.split(
        a,
        sizes.filter((size) => size > 0),
        0,
      ) as tf.Tensor2D[];
      const used = matrices.filter((_, block) => sizes[block]! > 0);
      const expected = tf.concat(
        parts.map((part, block) => tf.matMul(part, used[block]!)),
        0,
      );
      expect(bits(product)).toEqual(bits(expected));
      // The same operands again (XNNPACK keeps its packed weights per weight tensor): the same bits.
      expect(bits(blockProducts(a, sizes, matrices)!)).toEqual(bits(expected));
      // By each matrixᵀ, transposed in the heap: the bits of tf.matMul(part, tf.transpose(matrix)).
      const wide = sizes.map(
        (_, block) => tf.randomNormal([13, 20], 0, 1, 'float32', 9 + block) as tf.Tensor2D,
      );
      const usedWide = wide.filter((_, block) => sizes[block]! > 0);
      const byTransposed = tf.concat(
        parts.map((part, block) => tf.matMul(part, tf.transpose(usedWide[block]!))),
        0,
      );
      expect(bits(blockProducts(a, sizes, wide, true)!)).toEqual(bits(byTransposed));
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('gives each block’s weight gradient (blockᵀ · rows) with the bits of tf.matMul, leaving nothing behind', async () => {
    await activateTfjsBackend('tfjs-wasm');
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const sizes = [2, 5, 1, 9];
      const rows = sizes.reduce((sum, size) => sum + size, 0);
      const a = tf.randomNormal([rows, 6], 0, 1, 'float32', 3) as tf.Tensor2D;
      const b = tf.tensor2d(
        Float32Array.from({ length: rows * 11 }, (_, index) => (index % 13 === 5 ? -0 : Math.cos(index) * 2)),
        [rows, 11],
      );
      const products = blockTransposedProducts(a, b, sizes)!;
      const [aParts, bParts] = [tf.split(a, [...sizes], 0), tf.split(b, [...sizes], 0)];
      products.forEach((product, block) => {
        expect(product.shape).toEqual([6, 11]);
        const expected = tf.matMul(tf.transpose(aParts[block]!), bParts[block]!);
        expect(bits(product)).toEqual(bits(expected));
      });
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('keeps the bits past one block of k (running sums between blocks), both ways', async () => {
    await activateTfjsBackend('tfjs-wasm');
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      // Forward-like: k = 600 (three blocks of 256), n = 13 (packed, with a tail).
      const a = tf.randomNormal([14, 600], 0, 1, 'float32', 5) as tf.Tensor2D;
      const matrices = [0, 1].map(
        (block) => tf.randomNormal([13, 600], 0, 1, 'float32', 6 + block) as tf.Tensor2D,
      );
      const [first, second] = tf.split(a, [5, 9], 0) as tf.Tensor2D[];
      const expected = tf.concat(
        [tf.matMul(first!, tf.transpose(matrices[0]!)), tf.matMul(second!, tf.transpose(matrices[1]!))],
        0,
      );
      expect(bits(blockProducts(a, [5, 9], matrices, true)!)).toEqual(bits(expected));
      // Weight gradients over blocks of 300 and 270 rows.
      const rows = tf.randomNormal([570, 7], 0, 1, 'float32', 8) as tf.Tensor2D;
      const grads = tf.randomNormal([570, 16], 0, 1, 'float32', 9) as tf.Tensor2D;
      const products = blockTransposedProducts(rows, grads, [300, 270])!;
      const [rowParts, gradParts] = [tf.split(rows, [300, 270], 0), tf.split(grads, [300, 270], 0)];
      products.forEach((product, block) => {
        expect(bits(product)).toEqual(bits(tf.matMul(tf.transpose(rowParts[block]!), gradParts[block]!)));
      });
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is not available off tfjs-wasm (the caller runs ops)', async () => {
    await activateTfjsBackend('tfjs-cpu');
    expect(blockProducts(tf.ones([2, 3]), [2], [tf.ones([3, 4])])).toBeUndefined();
    expect(blockTransposedProducts(tf.ones([2, 3]), tf.ones([2, 4]), [2])).toBeUndefined();
  });
});
