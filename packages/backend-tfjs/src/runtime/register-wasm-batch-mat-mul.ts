import * as tf from '@tensorflow/tfjs-core';
import { heapOffset, instantiateOnHeap, type TfjsWasmBackend } from './tfjs-wasm-internals.js';
import { batchMatMulModule } from './wasm-batch-mat-mul.js';

interface BatchMatMulArgs {
  readonly inputs: { readonly a: tf.TensorInfo; readonly b: tf.TensorInfo };
  readonly backend: TfjsWasmBackend;
  readonly attrs: { readonly transposeA: boolean; readonly transposeB: boolean };
}

let registered = false;

/**
 * Puts the SIMD batched product (`wasm-batch-mat-mul.ts`) in front of tfjs-backend-wasm's `BatchMatMul`
 * for the products that kernel runs in its scalar loop: batches above 1 or transpose flags, with the same
 * batch on both sides. Everything else (flag-free single products, which XNNPACK runs; broadcast batches;
 * other dtypes) still goes to tfjs's kernel. Same bits either way; idempotent.
 */
export function registerWasmBatchMatMul(): void {
  const original = tf.getKernel('BatchMatMul', 'wasm');
  if (registered || original === undefined) return;
  registered = true;
  const kernelFunc = (args: BatchMatMulArgs): tf.TensorInfo => {
    const { a, b } = args.inputs;
    const { transposeA, transposeB } = args.attrs;
    const [aRank, bRank] = [a.shape.length, b.shape.length];
    const m = a.shape[transposeA ? aRank - 1 : aRank - 2]!;
    const k = a.shape[transposeA ? aRank - 2 : aRank - 1]!;
    const n = b.shape[transposeB ? bRank - 2 : bRank - 1]!;
    const kOfB = b.shape[transposeB ? bRank - 1 : bRank - 2]!;
    const batchShape = a.shape.slice(0, -2);
    const batch = batchShape.reduce((size, extent) => size * extent, 1);
    const sameBatch = batchShape.join() === b.shape.slice(0, -2).join();
    const scalarLoop = batch > 1 || transposeA || transposeB;
    // Anything else, mismatched shapes included (tfjs's kernel says what is wrong), goes to tfjs's kernel.
    const ours = a.dtype === 'float32' && b.dtype === 'float32' && sameBatch && scalarLoop && k === kOfB;
    if (!ours || m * n * k === 0) {
      return original.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
    }
    const backend = args.backend;
    const run = instantiateOnHeap(backend, batchMatMulModule)?.batchMatMul as
      | ((...args: number[]) => void)
      | undefined;
    if (run === undefined) {
      return original.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
    }
    const out = backend.makeOutput([...batchShape, m, n], 'float32');
    const packed = backend.wasm._malloc(k * (Math.ceil(n / 4) * 4) * 4);
    try {
      run(
        heapOffset(backend, a),
        heapOffset(backend, b),
        heapOffset(backend, out),
        packed,
        batch,
        m,
        n,
        k,
        transposeA ? 1 : 0,
        transposeB ? 1 : 0,
      );
    } finally {
      backend.wasm._free(packed);
    }
    return out;
  };
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({ ...original, kernelFunc: kernelFunc as unknown as tf.KernelFunc });
}
