import * as tf from '@tensorflow/tfjs-core';
import type { OptimizerPlacement } from './adamw.js';

/**
 * The global L2 norm of all gradients (what clipping compares with `maxGradNorm`). With tensors, a tfjs
 * reduction read back once; on the host, the same float32 sums in the same order from each gradient's
 * values (so both give the same bits), with no tfjs op per parameter.
 */
export function globalGradientNorm(
  gradients: ReadonlyMap<string, tf.Tensor>,
  placement: OptimizerPlacement,
): number {
  if (gradients.size === 0) return 0;
  if (placement === 'tensors') {
    return tf.tidy(() =>
      Math.sqrt(tf.addN([...gradients.values()].map((g) => tf.sum(tf.square(g)))).dataSync()[0]!),
    );
  }
  const f = Math.fround;
  let total = 0;
  for (const gradient of gradients.values()) {
    const values = gradient.dataSync() as Float32Array;
    let sum = 0;
    for (let index = 0; index < values.length; index++) sum = f(sum + f(values[index]! * values[index]!));
    total = f(total + sum);
  }
  return Math.sqrt(total);
}
