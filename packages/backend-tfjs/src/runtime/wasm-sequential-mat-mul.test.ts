import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { activateTfjsBackend } from './tfjs-runtime.js';
import { heapOffset, instantiateOnHeap, tfjsWasmBackend } from './tfjs-wasm-internals.js';
import { sequentialProductModule } from './wasm-sequential-mat-mul.js';

beforeAll(async () => {
  await activateTfjsBackend('tfjs-wasm');
});

const f = Math.fround;

/** Each output's products added in float32 over k one at a time from zero, written out. */
function sequentialProduct(
  a: Float32Array,
  b: Float32Array,
  [m, n, k]: readonly [number, number, number],
  transposeA: boolean,
  transposeB: boolean,
): Float32Array {
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let t = 0; t < k; t++) {
        const x = a[transposeA ? t * m + i : i * k + t]!;
        const y = b[transposeB ? j * k + t : t * n + j]!;
        sum = f(sum + f(x * y));
      }
      out[i * n + j] = sum;
    }
  }
  return out;
}

const sameBits = (x: Float32Array, y: Float32Array) =>
  x.length === y.length && x.every((value, index) => Object.is(value, y[index]));

/** Runs the kernel on tensors in the heap. */
function run(
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  [m, n, k]: readonly number[],
  transposeA: boolean,
  transposeB: boolean,
) {
  const backend = tfjsWasmBackend()!;
  const product = instantiateOnHeap(backend, sequentialProductModule)!.product as (...args: number[]) => void;
  const out = backend.makeOutput([m!, n!], 'float32');
  const packed = backend.wasm._malloc(k! * Math.ceil(n! / 8) * 32);
  const partials = backend.wasm._malloc(m! * Math.ceil(n! / 8) * 32);
  product(
    heapOffset(backend, a),
    heapOffset(backend, b),
    heapOffset(backend, out),
    packed,
    partials,
    m!,
    n!,
    k!,
    transposeA ? 1 : 0,
    transposeB ? 1 : 0,
  );
  backend.wasm._free(packed);
  backend.wasm._free(partials);
  return tf.engine().makeTensorFromTensorInfo(out) as tf.Tensor2D;
}

describe('the sequential SIMD product on tfjs-wasm', () => {
  // [m, n, k]: rows in 4-row tiles and 1–3 left over; n a multiple of 8 (read in place) or not (packed,
  // tails of 1–7 columns); k of 1 up to several blocks of 256.
  const shapes = [
    [4, 8, 16],
    [7, 16, 5],
    [13, 9, 64],
    [1, 1, 1],
    [9, 13, 200],
    [16, 32, 64],
    [3, 12, 7],
    [128, 24, 33],
    [6, 16, 700],
    [9, 13, 513],
  ];
  it.each(shapes)('adds over k in order from zero, every transpose, [%i, %i, %i]', (m, n, k) => {
    const values = (length: number) =>
      Float32Array.from({ length }, (_, index) => (index % 11 === 3 ? -0 : Math.sin(index * 12.9898) * 3));
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        const a = tf.tensor2d(values(m! * k!), transposeA ? [k!, m!] : [m!, k!]);
        const b = tf.tensor2d(values(k! * n!).reverse(), transposeB ? [n!, k!] : [k!, n!]);
        const ours = run(a, b, [m!, n!, k!], transposeA, transposeB);
        const expected = sequentialProduct(
          a.dataSync() as Float32Array,
          b.dataSync() as Float32Array,
          [m!, n!, k!],
          transposeA,
          transposeB,
        );
        expect(sameBits(ours.dataSync() as Float32Array, expected)).toBe(true);
        tf.dispose([a, b, ours]);
      }
    }
  });

  it('gives the bits of XNNPACK (tfjs-wasm’s tf.matMul without flags)', () => {
    for (const [m, n, k] of shapes) {
      const a = tf.randomNormal([m!, k!], 0, 1, 'float32', m) as tf.Tensor2D;
      const b = tf.randomNormal([k!, n!], 0, 1, 'float32', k) as tf.Tensor2D;
      const ours = run(a, b, [m!, n!, k!], false, false);
      const theirs = tf.matMul(a, b);
      expect(sameBits(ours.dataSync() as Float32Array, theirs.dataSync() as Float32Array)).toBe(true);
      tf.dispose([a, b, ours, theirs]);
    }
  });
});
