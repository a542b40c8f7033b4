import { MoerlError } from '../errors/moerl-error.js';
import type { DType } from './dtype.js';

/**
 * Typed-array storage per dtype. F16 and BF16 keep their raw 16-bit patterns in a Uint16Array;
 * convert with `toFloat32` / `fromFloat32` when you need numbers.
 */
export interface TensorDataByDType {
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  I32: Int32Array;
  U16: Uint16Array;
  U8: Uint8Array;
}

/** A dense, row-major host tensor: the exchange format between checkpoints, engines and trainers. */
export type HostTensor = {
  [D in DType]: { readonly dtype: D; readonly shape: readonly number[]; readonly data: TensorDataByDType[D] };
}[DType];

/** Weights by name, e.g. `model.layers.0.mlp.gate.weight`. Insertion order is kept. */
export type NamedTensors = Map<string, HostTensor>;

export function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const dimension of shape) count *= dimension;
  return count;
}

export function float32Tensor(shape: readonly number[], data?: Float32Array): HostTensor {
  const size = elementCount(shape);
  const values = data ?? new Float32Array(size);
  if (values.length !== size) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `float32Tensor: shape [${shape.join(', ')}] needs ${size} values, found ${values.length}`,
      { details: { expected: size, found: values.length } },
    );
  }
  return { dtype: 'F32', shape: [...shape], data: values };
}
