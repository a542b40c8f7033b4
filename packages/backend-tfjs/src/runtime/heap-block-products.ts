import * as tf from '@tensorflow/tfjs-core';
import {
  heapOffset,
  instantiateOnHeap,
  type TfjsWasmBackend,
  tfjsWasmBackend,
} from './tfjs-wasm-internals.js';
import { SEQUENTIAL_K_BLOCK, sequentialProductModule } from './wasm-sequential-mat-mul.js';

/**
 * Many products over consecutive row blocks of one tensor, in place in tfjs-wasm's heap, with no tensor
 * or tfjs op per block. The gathered experts' layer op multiplies each expert's rows by that expert's
 * weights; as tfjs ops that took a gather, a product and a piece of a concat per expert, and on tfjs-wasm
 * any op or tensor costs ~15–20 µs before its work (`clone` 18 µs), most of what 64 experts added to a
 * forward pass. Calling tfjs-wasm's matmul on heap views still cost ~20 µs a block: XNNPACK packs a
 * fresh weight operand into a new operator on every call. So each block here is one call of a SIMD
 * product kernel (`wasm-sequential-mat-mul.ts`) that adds in XNNPACK's order, so the bits are those of
 * `tf.matMul` (tested), and reads either operand transposed where it lies.
 */

type Product = (...args: number[]) => void;

/** The product kernel on this backend's heap, or `undefined` where the heap cannot be imported. */
const productKernel = (backend: TfjsWasmBackend): Product | undefined =>
  instantiateOnHeap(backend, sequentialProductModule)?.product as Product | undefined;

/** The kernel's working memory for products of up to `[maxM, maxK] · [maxK, n]`. */
interface Scratch {
  readonly packed: number;
  readonly partials: number;
}

/** `out = a · b`, all byte addresses: `a` `[m, k]` (`[k, m]` with `transposeA`), `b` `[k, n]` (`[n, k]` with `transposeB`). */
function multiply(
  product: Product,
  { packed, partials }: Scratch,
  [m, k, n]: readonly [number, number, number],
  {
    a,
    b,
    out,
    transposeA = false,
    transposeB = false,
  }: { a: number; b: number; out: number; transposeA?: boolean; transposeB?: boolean },
): void {
  product(a, b, out, packed, partials, m, n, k, transposeA ? 1 : 0, transposeB ? 1 : 0);
}

/** Scratch for products of up to `[maxM, maxK] · [maxK, n]`, freed after `use`. */
function withScratch<T>(
  backend: TfjsWasmBackend,
  [maxM, maxK, n]: readonly [number, number, number],
  use: (scratch: Scratch) => T,
): T {
  const rowBytes = Math.ceil(n / 8) * 32;
  const packed = backend.wasm._malloc(maxK * rowBytes);
  const partials = maxK > SEQUENTIAL_K_BLOCK ? backend.wasm._malloc(maxM * rowBytes) : 0;
  try {
    return use({ packed, partials });
  } finally {
    backend.wasm._free(packed);
    if (partials !== 0) backend.wasm._free(partials);
  }
}

/**
 * `[rows, n]`: rows `start … start + sizes[i]` of `a` (`[rows, k]`, blocks in order, sizes summing to its
 * rows) times `matrices[i]` (`[k, n]`), or with `transposed` times `matrices[i]ᵀ` (`matrices[i]` `[n, k]`),
 * for each block: the bits of `tf.matMul(block, matrix)` and of `tf.matMul(block, tf.transpose(matrix))`.
 * `undefined` off tfjs-wasm (the caller runs ops).
 */
export function blockProducts(
  a: tf.Tensor2D,
  sizes: readonly number[],
  matrices: readonly tf.Tensor2D[],
  transposed = false,
): tf.Tensor2D | undefined {
  const backend = tfjsWasmBackend();
  const product = backend === undefined ? undefined : productKernel(backend);
  if (backend === undefined || product === undefined) return undefined;
  const [rows, k] = a.shape;
  const n = transposed ? matrices[0]!.shape[0] : matrices[0]!.shape[1];
  const out = backend.makeOutput([rows, n], 'float32');
  const [aOffset, outOffset] = [heapOffset(backend, a), heapOffset(backend, out)];
  withScratch(backend, [Math.max(...sizes), k, n], (scratch) => {
    let start = 0;
    sizes.forEach((count, block) => {
      if (count === 0) return;
      multiply(product, scratch, [count, k, n], {
        a: aOffset + start * k * 4,
        b: heapOffset(backend, matrices[block]!),
        out: outOffset + start * n * 4,
        transposeB: transposed,
      });
      start += count;
    });
  });
  return tf.engine().makeTensorFromTensorInfo(out) as tf.Tensor2D;
}

/**
 * One `[m, n]` tensor per block: `(rows start … start + sizes[i] of a)ᵀ · (the same rows of b)`, for `a`
 * `[rows, m]` and `b` `[rows, n]` (a weight gradient per expert), with the bits of
 * `tf.matMul(tf.transpose(block), …)`. `undefined` off tfjs-wasm. Sizes must be positive.
 */
export function blockTransposedProducts(
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  sizes: readonly number[],
): tf.Tensor2D[] | undefined {
  const backend = tfjsWasmBackend();
  const product = backend === undefined ? undefined : productKernel(backend);
  if (backend === undefined || product === undefined) return undefined;
  const m = a.shape[1];
  const n = b.shape[1];
  const outputs = sizes.map(() => backend.makeOutput([m, n], 'float32'));
  const [aOffset, bOffset] = [heapOffset(backend, a), heapOffset(backend, b)];
  withScratch(backend, [m, Math.max(...sizes), n], (scratch) => {
    let start = 0;
    sizes.forEach((count, block) => {
      multiply(product, scratch, [m, count, n], {
        a: aOffset + start * m * 4,
        b: bOffset + start * n * 4,
        out: heapOffset(backend, outputs[block]!),
        transposeA: true,
      });
      start += count;
    });
  });
  return outputs.map((info) => tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor2D);
}
