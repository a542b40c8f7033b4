import * as tf from '@tensorflow/tfjs-core';
import { tfjsWasmBackend } from './tfjs-wasm-internals.js';

/**
 * Reading and making float32 tensors on backends whose memory is the host's (tfjs-wasm, tfjs-cpu) without
 * the copies `dataSync` and `tf.tensor` make. Allocating fresh arrays is not free: on these machines a
 * new 38 MB array cost ~100 ms in page faults against ~2 ms to fill one already mapped, and the host
 * optimizer read and wrote every parameter each step.
 */

/**
 * A float32 tensor's values, to read at once: on tfjs-wasm a view of its heap (valid until the next tfjs
 * op, which may grow and move the heap); elsewhere `dataSync` (on tfjs-cpu the tensor's own array).
 */
export function hostValues(tensor: tf.Tensor): Float32Array {
  // tfjs moves a tensor made on another backend into this one's memory when it is looked up.
  return tfjsWasmBackend()?.typedArrayFromHeap(tensor) ?? (tensor.dataSync() as Float32Array);
}

/**
 * A new float32 tensor whose values `fill` writes. On tfjs-wasm `fill` gets the tensor's own heap memory
 * (unfilled; it must write every element, and must run no tfjs op); elsewhere a fresh array the tensor
 * then holds. Either way no other tensor can see the values before they are complete: writing into a
 * tensor an op has read is not safe (tfjs-wasm keeps XNNPACK's packed copy of a matmul weight by tensor).
 */
export function tensorFilledBy(shape: readonly number[], fill: (values: Float32Array) => void): tf.Tensor {
  const backend = tfjsWasmBackend();
  if (backend === undefined) {
    const values = new Float32Array(shape.reduce((size, extent) => size * extent, 1));
    fill(values);
    return tf.tensor(values, [...shape], 'float32');
  }
  const tensor = tf.engine().makeTensorFromTensorInfo(backend.makeOutput([...shape], 'float32'));
  fill(backend.typedArrayFromHeap(tensor));
  return tensor;
}
