import * as tf from '@tensorflow/tfjs-core';
import { matMul } from '../runtime/mat-mul.js';

/** RMSNorm over the last axis: `x / sqrt(mean(x²) + eps) · weight`. */
export function rmsNorm<T extends tf.Tensor>(x: T, weight: tf.Tensor1D, eps: number): T {
  const meanSquare = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, eps))), weight) as T;
}

/** An `nn.Linear` with weight `[out, in]`: `x · Wᵀ (+ b)` for `x` of shape `[rows, in]`. */
export function linear(x: tf.Tensor2D, weight: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor2D {
  const product = matMul(x, weight, false, true);
  return bias === undefined ? product : (tf.add(product, bias) as tf.Tensor2D);
}

/** `down(silu(gate(x)) · up(x))`. */
export function swiGlu(x: tf.Tensor2D, gate: tf.Tensor2D, up: tf.Tensor2D, down: tf.Tensor2D): tf.Tensor2D {
  const gated = linear(x, gate);
  const activated = tf.mul(tf.mul(gated, tf.sigmoid(gated)), linear(x, up)) as tf.Tensor2D;
  return linear(activated, down);
}

/**
 * Rotary position tables `[length, headDim / 2]`, rounded like the reference and HF: the angle
 * `fround(position · invFreq)` and its cos / sin in float32.
 */
export function ropeTables(
  length: number,
  headDim: number,
  theta: number,
): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const inverse = new Float32Array(half);
  for (let index = 0; index < half; index++) {
    inverse[index] = Math.fround(1 / Math.fround(theta ** Math.fround((2 * index) / headDim)));
  }
  const cos = new Float32Array(length * half);
  const sin = new Float32Array(length * half);
  for (let position = 0; position < length; position++) {
    for (let index = 0; index < half; index++) {
      const angle = Math.fround(position * inverse[index]!);
      cos[position * half + index] = Math.cos(angle);
      sin[position * half + index] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/**
 * Rotate-half RoPE of `x` `[batch, length, heads, headDim]` with full-width tables `[1, length, 1, headDim]`:
 * `x · cos + rotate_half(x) · sin`, `rotate_half(x) = concat(−x₂, x₁)` taken as one product with a ±1
 * matrix (exact; tfjs-backend-wasm's split and concat on the last axis cost twice as much).
 */
export function applyRope(
  x: tf.Tensor4D,
  cos: tf.Tensor4D,
  sin: tf.Tensor4D,
  rotateHalf: tf.Tensor2D,
): tf.Tensor4D {
  const headDim = x.shape[3];
  const rotated = tf.reshape(tf.matMul(tf.reshape(x, [-1, headDim]), rotateHalf), x.shape);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
}
