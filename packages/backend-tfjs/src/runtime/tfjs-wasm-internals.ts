import * as tf from '@tensorflow/tfjs-core';
import { instantiate } from './wasm-binary.js';

/**
 * The one place that says what moerl uses of tfjs-backend-wasm 4.x beyond its public ops: its heap (the
 * WebAssembly memory kernels written here import), its allocator, its tensors' addresses, and heap
 * tensors made unfilled or read as views. Every use checks that these are there and falls back to tfjs
 * ops when they are not.
 */
export interface TfjsWasmBackend {
  readonly wasm: {
    readonly asm: { readonly memory: object };
    _malloc(bytes: number): number;
    _free(pointer: number): void;
  };
  readonly dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  typedArrayFromHeap(tensor: tf.TensorInfo): Float32Array;
}

/** The active backend when it is tfjs-wasm with the internals above, else `undefined`. */
export function tfjsWasmBackend(): TfjsWasmBackend | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  const backend = tf.backend() as unknown as Partial<TfjsWasmBackend>;
  const usable =
    typeof backend.wasm?._malloc === 'function' &&
    backend.wasm.asm?.memory !== undefined &&
    backend.dataIdMap !== undefined &&
    typeof backend.makeOutput === 'function' &&
    typeof backend.typedArrayFromHeap === 'function';
  return usable ? (backend as TfjsWasmBackend) : undefined;
}

/** A tensor's byte address in the heap. */
export const heapOffset = (backend: TfjsWasmBackend, tensor: tf.TensorInfo): number =>
  backend.dataIdMap.get(tensor.dataId)!.memoryOffset;

/** Each heap's instances, by the function that gives the module's bytes. */
const heapInstances = new WeakMap<object, Map<() => Uint8Array, Record<string, unknown> | undefined>>();

/**
 * The exports of `module()` instantiated over the backend's heap as `env.memory`, once per heap and
 * module; `undefined` where the heap cannot be imported (tfjs-wasm's threaded build shares its memory):
 * callers then use tfjs's own kernels.
 */
export function instantiateOnHeap(
  backend: TfjsWasmBackend,
  module: () => Uint8Array,
): Record<string, unknown> | undefined {
  const memory = backend.wasm.asm.memory;
  let instances = heapInstances.get(memory);
  if (instances === undefined) {
    instances = new Map();
    heapInstances.set(memory, instances);
  }
  if (!instances.has(module)) {
    let exports: Record<string, unknown> | undefined;
    try {
      exports = instantiate(module(), memory);
    } catch {
      exports = undefined;
    }
    instances.set(module, exports);
  }
  return instances.get(module);
}
