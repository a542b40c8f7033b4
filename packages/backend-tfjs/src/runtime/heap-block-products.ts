import * as tf from '@tensorflow/tfjs-core';

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

/** What this needs of tfjs-backend-wasm 4.x: its C functions, its tensor ids, and its heap tensors. */
interface WasmInternals {
  readonly wasm: {
    cwrap(name: string, returns: null, args: string[]): (...args: unknown[]) => void;
    readonly tfjs: {
      registerTensor(id: number, size: number, memoryOffset: number): void;
      disposeData(id: number): void;
    };
  };
  dataIdNextNumber: number;
  readonly dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
}

let bound: { backend: WasmInternals; batchMatMul: (...args: unknown[]) => void } | undefined;

function wasmInternals(): WasmInternals | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  const backend = tf.backend() as unknown as Partial<WasmInternals>;
  const usable =
    typeof backend.wasm?.cwrap === 'function' &&
    typeof backend.wasm.tfjs?.registerTensor === 'function' &&
    typeof backend.dataIdNextNumber === 'number' &&
    backend.dataIdMap !== undefined;
  return usable ? (backend as WasmInternals) : undefined;
}

const shapeBytes = (shape: readonly number[]) => new Uint8Array(Int32Array.from(shape).buffer);

/**
 * `[rows, n]`: rows `start … start + sizes[i]` of `a` (`[rows, k]`, blocks in order, sizes summing to its
 * rows) times `matrices[i]` (`[k, n]`), for each block. `undefined` off tfjs-wasm (the caller runs ops).
 */
export function blockProducts(
  a: tf.Tensor2D,
  sizes: readonly number[],
  matrices: readonly tf.Tensor2D[],
): tf.Tensor2D | undefined {
  const backend = wasmInternals();
  if (backend === undefined) return undefined;
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
    bound = { backend, batchMatMul };
  }
  const [rows, k] = a.shape;
  const n = matrices[0]!.shape[1];
  const out = backend.makeOutput([rows, n], 'float32');
  const aOffset = backend.dataIdMap.get(a.dataId)!.memoryOffset;
  const outOffset = backend.dataIdMap.get(out.dataId)!.memoryOffset;
  const view = (size: number, offset: number) => {
    const id = backend.dataIdNextNumber++;
    backend.wasm.tfjs.registerTensor(id, size, offset);
    return id;
  };
  let start = 0;
  sizes.forEach((count, block) => {
    if (count === 0) return;
    const aId = view(count * k, aOffset + start * k * 4);
    const outId = view(count * n, outOffset + start * n * 4);
    const bId = backend.dataIdMap.get(matrices[block]!.dataId)!.id;
    bound!.batchMatMul(aId, shapeBytes([1, count, k]), 3, bId, shapeBytes([1, k, n]), 3, 0, 0, outId);
    // Views only: unregistered, never freed (the memory is a's and the output's).
    backend.wasm.tfjs.disposeData(aId);
    backend.wasm.tfjs.disposeData(outId);
    start += count;
  });
  return tf.engine().makeTensorFromTensorInfo(out) as tf.Tensor2D;
}
