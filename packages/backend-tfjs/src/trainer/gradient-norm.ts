import * as tf from '@tensorflow/tfjs-core';
import { hostValues } from '../runtime/host-tensor-memory.js';
import type { OptimizerPlacement } from './adamw.js';
import { sumOfSquares } from './adamw-kernel.js';

/**
 * The global L2 norm of all gradients (what clipping compares with `maxGradNorm`). With tensors, a tfjs
 * reduction read back once; on the host, a WebAssembly kernel adding in float32 in the order tfjs-wasm's
 * reduction does (the same bits there; tfjs-cpu adds in float64), with no tfjs op per parameter.
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
  let total = 0;
  for (const gradient of gradients.values()) total = Math.fround(total + sumOfSquares(hostValues(gradient)));
  return Math.sqrt(total);
}
