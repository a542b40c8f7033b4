import * as tf from '@tensorflow/tfjs-core';
import {
  heapOffset,
  heapTensorId,
  instantiateOnHeap,
  type TfjsWasmBackend,
  tfjsWasmBackend,
} from './tfjs-wasm-internals.js';
import { byteAddress, encodeModule, forRange, I32, op } from './wasm-binary.js';

/**
 * Many products over consecutive row blocks of one tensor, each by tfjs-wasm's own matmul (XNNPACK) on
 * views into the heap, with no tensor per block. The gathered experts' layer op multiplies each expert's
 * rows by that expert's weights; as separate tfjs ops that took a gather, a product and a piece of a
 * concat per expert, and on tfjs-wasm any op or tensor costs ~15–20 µs before its work (measured: `clone`
 * 18 µs), which with 64 experts was most of what they added to a forward pass. Here each block's rows and
 * its output rows are registered with tfjs-wasm as views for one call of its `BatchMatMul` function and
 * unregistered after: XNNPACK gets the same operands as `tf.matMul` would give it, so the bits are the
 * same.
 */

// transpose(source, target, rows, columns): target[c][r] = source[r][c], byte addresses in tfjs-wasm's heap.
const [SOURCE, TARGET, ROWS, COLUMNS, ROW, COLUMN] = [0, 1, 2, 3, 4, 5];
const transposeModule = () =>
  encodeModule(
    [
      {
        name: 'transpose',
        params: [I32, I32, I32, I32],
        results: [],
        locals: [I32, I32],
        body: forRange(
          ROW,
          [op.i32Const(0)],
          [op.localGet(ROWS)],
          [op.i32Const(1)],
          [
            ...forRange(
              COLUMN,
              [op.i32Const(0)],
              [op.localGet(COLUMNS)],
              [op.i32Const(1)],
              [
                ...byteAddress(TARGET, [
                  op.localGet(COLUMN),
                  op.localGet(ROWS),
                  op.i32Mul,
                  op.localGet(ROW),
                  op.i32Add,
                ]),
                ...byteAddress(SOURCE, [
                  op.localGet(ROW),
                  op.localGet(COLUMNS),
                  op.i32Mul,
                  op.localGet(COLUMN),
                  op.i32Add,
                ]),
                op.f32Load,
                op.f32Store,
              ],
            ),
          ],
        ),
      },
    ],
    'imported',
  );

let bound:
  | {
      backend: TfjsWasmBackend;
      batchMatMul: (...args: unknown[]) => void;
      transpose: ((source: number, target: number, rows: number, columns: number) => void) | undefined;
    }
  | undefined;

function bind(backend: TfjsWasmBackend): NonNullable<typeof bound> {
  if (bound?.backend !== backend) {
    const batchMatMul = backend.wasm.cwrap('BatchMatMul', null, [
      'number',
      'array',
      'number',
      'number',
      'array',
      'number',
      'number',
      'number',
      'number',
    ]);
    const transpose = instantiateOnHeap(backend, transposeModule())?.transpose as NonNullable<
      typeof bound
    >['transpose'];
    bound = { backend, batchMatMul, transpose };
  }
  return bound;
}

const shapeBytes = (shape: readonly number[]) => new Uint8Array(Int32Array.from(shape).buffer);

/** An operand: a tensor tfjs-wasm knows by id, or `size` floats at a byte offset, seen through a view. */
type Operand = { readonly id: number } | { readonly offset: number; readonly size: number };

/**
 * `out = a · b` by tfjs-wasm's own matmul, `a` `[m, k]`, `b` `[k, n]`, `out` `[m, n]`; operands given by
 * offset are registered as views for the call and unregistered after (never freed: the memory is
 * another tensor's). Unregistering a view of `b` also drops the XNNPACK operator made for it.
 */
function multiply(
  backend: TfjsWasmBackend,
  batchMatMul: (...args: unknown[]) => void,
  [m, k, n]: readonly [number, number, number],
  a: Operand,
  b: Operand,
  out: Operand,
): void {
  const views: number[] = [];
  const idOf = (operand: Operand) => {
    if ('id' in operand) return operand.id;
    const id = backend.dataIdNextNumber++;
    backend.wasm.tfjs.registerTensor(id, operand.size, operand.offset);
    views.push(id);
    return id;
  };
  batchMatMul(idOf(a), shapeBytes([1, m, k]), 3, idOf(b), shapeBytes([1, k, n]), 3, 0, 0, idOf(out));
  for (const id of views) backend.wasm.tfjs.disposeData(id);
}

/**
 * `[rows, n]`: rows `start … start + sizes[i]` of `a` (`[rows, k]`, blocks in order, sizes summing to its
 * rows) times `matrices[i]` (`[k, n]`), or with `transposed` times `matrices[i]ᵀ` (`matrices[i]` `[n, k]`,
 * transposed in the heap by a small WebAssembly loop, as `tf.transpose` would lay it out), for each
 * block. `undefined` off tfjs-wasm (the caller runs ops).
 */
export function blockProducts(
  a: tf.Tensor2D,
  sizes: readonly number[],
  matrices: readonly tf.Tensor2D[],
  transposed = false,
): tf.Tensor2D | undefined {
  const backend = tfjsWasmBackend();
  if (backend === undefined) return undefined;
  const { batchMatMul, transpose } = bind(backend);
  if (transposed && transpose === undefined) return undefined;
  const [rows, k] = a.shape;
  const n = transposed ? matrices[0]!.shape[0] : matrices[0]!.shape[1];
  const out = backend.makeOutput([rows, n], 'float32');
  // Every matrixᵀ, one after another (the used blocks' only).
  const used = sizes.filter((count) => count > 0).length;
  const scratch = transposed ? backend.makeOutput([used * k, n], 'float32') : undefined;
  const offset = (info: tf.TensorInfo) => heapOffset(backend, info);
  const [aOffset, outOffset] = [offset(a), offset(out)];
  let start = 0;
  let slot = 0;
  sizes.forEach((count, block) => {
    if (count === 0) return;
    const matrix = matrices[block]!;
    let b: Operand = { id: heapTensorId(backend, matrix) };
    if (scratch !== undefined) {
      const at = offset(scratch) + slot++ * k * n * 4;
      transpose!(offset(matrix), at, n, k);
      b = { offset: at, size: k * n };
    }
    multiply(backend, batchMatMul, [count, k, n], { offset: aOffset + start * k * 4, size: count * k }, b, {
      offset: outOffset + start * n * 4,
      size: count * n,
    });
    start += count;
  });
  if (scratch !== undefined) tf.engine().makeTensorFromTensorInfo(scratch).dispose();
  return tf.engine().makeTensorFromTensorInfo(out) as tf.Tensor2D;
}

/**
 * One `[m, n]` tensor per block: `(rows start … start + sizes[i] of a)ᵀ · (the same rows of b)`, for `a`
 * `[rows, m]` and `b` `[rows, n]` (a weight gradient per expert). Each block of `a` is transposed in the
 * heap by a small WebAssembly loop; XNNPACK then gets the operands `tf.matMul(tf.transpose(block), …)`
 * would give it. `undefined` off tfjs-wasm. Sizes must be positive.
 */
export function blockTransposedProducts(
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  sizes: readonly number[],
): tf.Tensor2D[] | undefined {
  const backend = tfjsWasmBackend();
  if (backend === undefined) return undefined;
  const { batchMatMul, transpose } = bind(backend);
  if (transpose === undefined) return undefined;
  const [rows, m] = a.shape;
  const n = b.shape[1];
  const scratch = backend.makeOutput([rows, m], 'float32');
  const outputs = sizes.map(() => backend.makeOutput([m, n], 'float32'));
  const offset = (info: tf.TensorInfo) => heapOffset(backend, info);
  const [aOffset, bOffset, scratchOffset] = [offset(a), offset(b), offset(scratch)];
  let start = 0;
  sizes.forEach((count, block) => {
    transpose(aOffset + start * m * 4, scratchOffset + start * m * 4, count, m);
    multiply(
      backend,
      batchMatMul,
      [m, count, n],
      { offset: scratchOffset + start * m * 4, size: count * m },
      { offset: bOffset + start * n * 4, size: count * n },
      { id: heapTensorId(backend, outputs[block]!) },
    );
    start += count;
  });
  tf.engine().makeTensorFromTensorInfo(scratch).dispose();
  return outputs.map((info) => tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor2D);
}
