import { MoerlError } from '@moerl/core';
import { checkChoice, checkMask, checkNumber, checkSequenceOffsets } from '../validation/checks.js';

/** verl's loss_agg_mode names. */
export const LOSS_AGG_MODES = [
  'token-mean',
  'seq-mean-token-sum',
  'seq-mean-token-mean',
  'seq-mean-token-sum-norm',
] as const;

export type LossAggMode = (typeof LOSS_AGG_MODES)[number];

/**
 * Every aggregation mode is linear in the per-token losses: loss = Σ_t w_t · ℓ_t. This returns w_t
 * (0 on masked tokens), so a loss and its gradient share one definition.
 *
 * - `token-mean`: 1 / (unmasked tokens of the batch)  (DAPO)
 * - `seq-mean-token-sum`: 1 / (responses)
 * - `seq-mean-token-mean`: 1 / (responses · unmasked tokens of the response)  (GRPO paper, GSPO)
 * - `seq-mean-token-sum-norm`: 1 / lossScaleFactor, default the longest response (Dr.GRPO's constant)
 *
 * "Responses" counts responses with at least one unmasked token, so rejected or empty responses do not
 * dilute the mean.
 */
export function aggregationWeights(
  sequenceOffsets: ArrayLike<number>,
  mask: ArrayLike<number> | undefined,
  mode: LossAggMode,
  lossScaleFactor?: number,
): Float64Array {
  checkChoice('lossAggMode', mode, LOSS_AGG_MODES);
  const numSequences = checkSequenceOffsets('sequenceOffsets', sequenceOffsets);
  const tokens = sequenceOffsets[numSequences]!;
  if (mask !== undefined) checkMask('mask', mask, tokens, true);
  const counts = new Int32Array(numSequences);
  let totalTokens = 0;
  let liveSequences = 0;
  let longest = 0;
  for (let i = 0; i < numSequences; i++) {
    const start = sequenceOffsets[i]!;
    const end = sequenceOffsets[i + 1]!;
    longest = Math.max(longest, end - start);
    let count = 0;
    for (let t = start; t < end; t++) count += mask === undefined ? 1 : mask[t]!;
    counts[i] = count;
    totalTokens += count;
    if (count > 0) liveSequences++;
  }
  let scale = longest;
  if (mode === 'seq-mean-token-sum-norm' && lossScaleFactor !== undefined) {
    checkNumber('lossScaleFactor', lossScaleFactor, { min: 0, minOpen: true });
    scale = lossScaleFactor;
  }
  const weights = new Float64Array(tokens);
  if (totalTokens === 0) return weights;
  for (let i = 0; i < numSequences; i++) {
    const count = counts[i]!;
    if (count === 0) continue;
    let weight: number;
    switch (mode) {
      case 'token-mean':
        weight = 1 / totalTokens;
        break;
      case 'seq-mean-token-sum':
        weight = 1 / liveSequences;
        break;
      case 'seq-mean-token-mean':
        weight = 1 / (liveSequences * count);
        break;
      case 'seq-mean-token-sum-norm':
        weight = 1 / scale;
        break;
      default:
        throw new MoerlError('INVALID_ARGUMENT', `Unknown lossAggMode '${String(mode)}'`);
    }
    for (let t = sequenceOffsets[i]!; t < sequenceOffsets[i + 1]!; t++) {
      weights[t] = mask === undefined || mask[t] === 1 ? weight : 0;
    }
  }
  return weights;
}

/** Σ_t w_t · ℓ_t in float64. */
export function aggregateLoss(tokenLosses: ArrayLike<number>, weights: ArrayLike<number>): number {
  let sum = 0;
  for (let t = 0; t < weights.length; t++) if (weights[t] !== 0) sum += weights[t]! * tokenLosses[t]!;
  return sum;
}
