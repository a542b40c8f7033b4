import * as tf from '@tensorflow/tfjs-core';

/**
 * `op(a) · op(b)`, where op transposes the last two axes when asked. tfjs-backend-wasm runs a 2-D matmul
 * through XNNPACK only without transpose flags; with either flag it falls back to a plain loop about ten
 * times slower (measured in Node 20: 504×64 · (32×64)ᵀ 0.94 ms with the flag, 0.08 ms with the transpose
 * done first; the LM head 504×64 · (151×64)ᵀ 5.5 vs 0.5 ms). So on wasm a 2-D operand is transposed
 * explicitly and the product runs flag-free. Batched (rank > 2) products take the loop either way and keep
 * their flags, as do other backends, where the flags cost nothing.
 */
export function matMul<T extends tf.Tensor>(a: T, b: T, transposeA = false, transposeB = false): T {
  if ((transposeA || transposeB) && a.rank === 2 && b.rank === 2 && tf.getBackend() === 'wasm') {
    return tf.matMul(
      transposeA ? tf.transpose(a as tf.Tensor2D) : (a as tf.Tensor2D),
      transposeB ? tf.transpose(b as tf.Tensor2D) : (b as tf.Tensor2D),
    ) as unknown as T;
  }
  return tf.matMul(a, b, transposeA, transposeB) as unknown as T;
}
