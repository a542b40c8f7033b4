import {
  checkChoice,
  checkNumber,
  checkSequenceOffsets,
  checkTokenArrays,
  type NumberArray,
} from '../validation/checks.js';

export interface ImportanceSamplingConfig {
  /**
   * `truncate` (TIS): weight min(ρ, threshold). `mask` (MIS): tokens or responses whose ρ leaves
   * [thresholdLower, threshold] are dropped from the loss; the kept ones are weighted by ρ. Default 'truncate'.
   */
  readonly mode?: 'truncate' | 'mask';
  /**
   * `token`: ρ_t = exp(old_t − engine_t). `sequence`: ρ = exp(Σ_t (old_t − engine_t)) for every token of the
   * response. `geometric`: exp of the mean instead of the sum. Default 'token'.
   */
  readonly level?: 'token' | 'sequence' | 'geometric';
  /** C, the upper bound. Default 2. */
  readonly threshold?: number;
  /** Lower bound for `mask` mode. Default 1 / threshold. */
  readonly thresholdLower?: number;
}

export interface ImportanceWeights {
  /** Detached factor per token on the policy loss; 0 on masked and dropped tokens. */
  readonly weights: Float64Array;
  /** The loss mask after MIS rejection (the input mask in truncate mode). */
  readonly keepMask: Uint8Array;
  /** Mean of the applied weights over the input mask's tokens. */
  readonly weightMean: number;
  /** Fraction of the input mask's tokens that MIS dropped (0 in truncate mode). */
  readonly maskedFraction: number;
  /** Fraction of responses (with loss tokens) that lost at least one token to MIS. */
  readonly sequenceMaskedFraction: number;
}

/** exp never overflows: log ratios are clamped to ±20 first, as verl does. */
const SAFETY_BOUND = 20;

/**
 * Train–inference correction weights (verl `compute_rollout_importance_weights`): the rollout was
 * sampled by the inference engine, the loss is computed under the trainer's old policy, so each token
 * is reweighted by ρ = π_old / π_engine. The weights are detached factors on the policy loss.
 */
export function importanceWeights(
  sequenceOffsets: ArrayLike<number>,
  oldLogprobs: NumberArray,
  engineLogprobs: NumberArray,
  mask: ArrayLike<number>,
  config: ImportanceSamplingConfig = {},
): ImportanceWeights {
  const mode = checkChoice('importanceSampling.mode', config.mode ?? 'truncate', [
    'truncate',
    'mask',
  ] as const);
  const level = checkChoice('importanceSampling.level', config.level ?? 'token', [
    'token',
    'sequence',
    'geometric',
  ] as const);
  const upper = config.threshold ?? 2;
  checkNumber('importanceSampling.threshold', upper, { min: 1, minOpen: true });
  const lower = config.thresholdLower ?? 1 / upper;
  checkNumber('importanceSampling.thresholdLower', lower, { min: 0, max: upper });

  checkSequenceOffsets('sequenceOffsets', sequenceOffsets);
  const tokens = sequenceOffsets[sequenceOffsets.length - 1]!;
  checkTokenArrays(tokens, { oldLogprobs, engineLogprobs, mask });
  const weights = new Float64Array(tokens);
  const keepMask = new Uint8Array(tokens);
  let counted = 0;
  let dropped = 0;
  let weightSum = 0;
  let liveSequences = 0;
  let sequencesHit = 0;
  for (let i = 0; i + 1 < sequenceOffsets.length; i++) {
    const start = sequenceOffsets[i]!;
    const end = sequenceOffsets[i + 1]!;
    let count = 0;
    let logSum = 0;
    for (let t = start; t < end; t++) {
      if (mask[t] !== 1) continue;
      count++;
      logSum += oldLogprobs[t]! - engineLogprobs[t]!;
    }
    if (count === 0) continue;
    liveSequences++;
    const sequenceLog = level === 'sequence' ? logSum : logSum / count;
    let hit = false;
    for (let t = start; t < end; t++) {
      if (mask[t] !== 1) continue;
      const logRatio = level === 'token' ? oldLogprobs[t]! - engineLogprobs[t]! : sequenceLog;
      const ratio = Math.exp(Math.min(SAFETY_BOUND, Math.max(-SAFETY_BOUND, logRatio)));
      counted++;
      if (mode === 'truncate') {
        weights[t] = Math.min(ratio, upper);
        keepMask[t] = 1;
      } else if (ratio >= lower && ratio <= upper) {
        weights[t] = ratio;
        keepMask[t] = 1;
      } else {
        dropped++;
        hit = true;
      }
      weightSum += weights[t]!;
    }
    if (hit) sequencesHit++;
  }
  return {
    weights,
    keepMask,
    weightMean: counted === 0 ? 0 : weightSum / counted,
    maskedFraction: counted === 0 ? 0 : dropped / counted,
    sequenceMaskedFraction: liveSequences === 0 ? 0 : sequencesHit / liveSequences,
  };
}
