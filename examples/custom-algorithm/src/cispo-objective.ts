import type { ObjectiveOptions } from '@moerl/algos';
import { MoerlError, type Objective, type ObjectiveInput, type ObjectiveResult } from '@moerl/core';
import { cispoLoss } from './cispo-loss.js';

/** Default ε_high: the weight cap is 1 + 0.28. Set `clipRatioHigh` to change it. */
export const CISPO_DEFAULT_CLIP_RATIO_HIGH = 0.28;

/**
 * The CISPO objective for one batch, built from the options every objective factory of @moerl/algos
 * receives: `batch` (offsets, old logprobs, advantages, mask), `clipRatioHigh` (default 0.28) and
 * `lossAggMode` (default `token-mean`) and `globalBatch` (the trainer's step totals, so mini-batches sum to
 * the step's gradient). Other options (KL, importance sampling, entropy) are not supported
 * and are refused rather than ignored.
 */
export function createCispoObjective(options: ObjectiveOptions): Objective {
  for (const option of ['kl', 'importanceSampling', 'entropyCoefficient'] as const) {
    if (options[option] !== undefined) {
      throw new MoerlError('UNSUPPORTED', `The cispo objective does not support ${option}, found it set`, {
        details: { field: option },
      });
    }
  }
  const { batch } = options;
  const config = {
    clipRatioHigh: options.clipRatioHigh ?? CISPO_DEFAULT_CLIP_RATIO_HIGH,
    lossAggMode: options.lossAggMode ?? 'token-mean',
    ...(options.globalBatch === undefined ? {} : { globalBatch: options.globalBatch }),
  };
  const base = {
    sequenceOffsets: batch.sequenceOffsets,
    oldLogprobs: batch.oldLogprobs,
    advantages: batch.advantages,
    ...(batch.responseMask === undefined ? {} : { responseMask: batch.responseMask }),
  };
  // Validates the batch now, at build time, so a bad batch fails before any forward pass.
  cispoLoss({ ...base, logprobs: batch.oldLogprobs }, config);
  return {
    name: 'example-cispo',
    evaluate(input: ObjectiveInput): ObjectiveResult {
      const result = cispoLoss({ ...base, logprobs: input.logprobs }, config);
      return {
        loss: result.loss,
        gradient: Float32Array.from(result.gradient),
        metrics: { loss: result.loss, clipFraction: result.clipFraction, isWeightMean: result.weightMean },
      };
    },
  };
}
