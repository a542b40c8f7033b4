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
 * Totals of the whole optimiser step, for verl's global-batch normalisation (its `batch_num_tokens`,
 * `global_batch_size`, `dp_size`): with them a micro-batch's weights are its share of the step's loss, so
 * summing the gradients of k micro-batches (or ranks) gives the gradient of the whole batch at once.
 */
export interface GlobalBatch {
  /** Loss tokens of the whole step (after any rejection). */
  readonly tokens: number;
  /** Responses with at least one loss token in the whole step. */
  readonly sequences: number;
  /**
   * Data-parallel ranks whose gradients are averaged (verl multiplies by dp_size to undo the average).
   * Default 1 (gradients summed, as micro-batch accumulation does).
   */
  readonly dpSize?: number;
}

/** The totals `aggregationWeights` needs to normalise by the whole step: count them over the full batch. */
export function globalBatchOf(sequenceOffsets: ArrayLike<number>, mask?: ArrayLike<number>): GlobalBatch {
  const numSequences = checkSequenceOffsets('sequenceOffsets', sequenceOffsets);
  const tokens = sequenceOffsets[numSequences]!;
  if (mask !== undefined) checkMask('mask', mask, tokens, true);
  let total = 0;
  let sequences = 0;
  for (let i = 0; i < numSequences; i++) {
    let count = 0;
    for (let t = sequenceOffsets[i]!; t < sequenceOffsets[i + 1]!; t++)
      count += mask === undefined ? 1 : mask[t]!;
    total += count;
    if (count > 0) sequences++;
  }
  return { tokens: total, sequences };
}

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
 *
 * With `globalBatch` the token and response counts are those of the whole step instead of this batch,
 * times `dpSize` (verl's global-batch semantics): `token-mean` = dpSize / global tokens, `seq-mean-*` =
 * dpSize / global responses (× 1 / the response's own tokens for seq-mean-token-mean), and
 * `seq-mean-token-sum-norm` = dpSize / lossScaleFactor, which must then be given (the longest response of
 * a micro-batch depends on the split). moerl keeps Dr.GRPO's Σ / constant there; recent verl also divides
 * that mode by global_batch_size.
 */
export function aggregationWeights(
  sequenceOffsets: ArrayLike<number>,
  mask: ArrayLike<number> | undefined,
  mode: LossAggMode,
  lossScaleFactor?: number,
  globalBatch?: GlobalBatch,
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
  let dpSize = 1;
  if (globalBatch !== undefined) {
    checkNumber('globalBatch.tokens', globalBatch.tokens, { min: totalTokens });
    checkNumber('globalBatch.sequences', globalBatch.sequences, { min: liveSequences });
    dpSize = globalBatch.dpSize ?? 1;
    checkNumber('globalBatch.dpSize', dpSize, { min: 1 });
    if (mode === 'seq-mean-token-sum-norm' && lossScaleFactor === undefined) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        'lossScaleFactor must be set for seq-mean-token-sum-norm with globalBatch (the longest response depends on the split), found none',
        { details: { field: 'lossScaleFactor' } },
      );
    }
    totalTokens = globalBatch.tokens;
    liveSequences = globalBatch.sequences;
  }
  const weights = new Float64Array(tokens);
  if (totalTokens === 0) return weights;
  for (let i = 0; i < numSequences; i++) {
    const count = counts[i]!;
    if (count === 0) continue;
    let weight: number;
    switch (mode) {
      case 'token-mean':
        weight = dpSize / totalTokens;
        break;
      case 'seq-mean-token-sum':
        weight = dpSize / liveSequences;
        break;
      case 'seq-mean-token-mean':
        weight = dpSize / (liveSequences * count);
        break;
      case 'seq-mean-token-sum-norm':
        weight = dpSize / scale;
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
