import * as tf from '@tensorflow/tfjs-core';
import { headLogits } from './forward.js';
import type { ModelParameters } from './parameters.js';
import { gatherRows } from './row-ops.js';

export interface TokenLogprobs {
  /** `[tokens]`: log softmax(logits / temperature) at each target. */
  readonly logprobs: tf.Tensor1D;
  /** `[tokens]`: entropy (nats) of softmax(logits / temperature), when asked for. */
  readonly entropy?: tf.Tensor1D;
}

/**
 * Logprobs of `targets` at the `rows` of `hidden` (the engine's definition: log softmax of the logits divided
 * by the sampling temperature), and optionally the entropy of each row's distribution. Only the selected
 * rows go through the LM head.
 */
export function tokenLogprobs(
  parameters: ModelParameters,
  hidden: tf.Tensor2D,
  rows: Int32Array,
  targets: Int32Array,
  temperature: number,
  withEntropy: boolean,
): TokenLogprobs {
  const vocab = parameters.config.vocabSize;
  const logits = headLogits(parameters, gatherRows(hidden, rows));
  const logSoftmax = tf.logSoftmax(temperature === 1 ? logits : tf.div(logits, temperature));
  const picked = tf.oneHot(tf.tensor1d(targets, 'int32'), vocab);
  const logprobs = tf.sum(tf.mul(logSoftmax, picked), -1) as tf.Tensor1D;
  if (!withEntropy) return { logprobs };
  const entropy = tf.neg(tf.sum(tf.mul(tf.exp(logSoftmax), logSoftmax), -1)) as tf.Tensor1D;
  return { logprobs, entropy };
}
