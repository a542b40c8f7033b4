import { checkNumber } from '../validation/checks.js';
import {
  groupMeanBaselines,
  type PreparedRewardBatch,
  prepareRewardBatch,
  type RewardBatch,
} from './reward-batch.js';

export interface ReinforcePlusPlusOptions {
  /** Discount of future token rewards. Default 1. */
  readonly gamma?: number;
}

/** Per-token advantages normalised over the whole batch. */
export interface TokenAdvantageResult {
  readonly tokenAdvantages: Float64Array;
}

const WHITEN_EPSILON = 1e-8;

/**
 * REINFORCE++ (verl `reinforce_plus_plus`): discounted returns per token, then whitened over every
 * unmasked token of the batch (mean and unbiased variance, (x − mean) / sqrt(var + 1e-8)). A response
 * reward (`rewards`) sits on the response's last unmasked token; `tokenRewards` are used as given.
 */
export function reinforcePlusPlusAdvantages(
  batch: RewardBatch,
  options: ReinforcePlusPlusOptions = {},
): TokenAdvantageResult {
  const gamma = options.gamma ?? 1;
  checkNumber('gamma', gamma, { min: 0, max: 1 });
  const prepared = prepareRewardBatch(batch);
  const { offsets, numSequences, mask } = prepared;
  const returns = new Float64Array(prepared.tokens);
  for (let i = 0; i < numSequences; i++) {
    const start = offsets[i]!;
    const end = offsets[i + 1]!;
    const tokenReward = rewardsOfSequence(batch, prepared, i);
    let running = 0;
    for (let t = end - 1; t >= start; t--) {
      running = tokenReward(t) + gamma * running;
      returns[t] = running;
      // Masked tokens (after EOS in verl's padded layout) break the chain of returns.
      if (mask !== undefined && mask[t] === 0) running = 0;
    }
  }
  return { tokenAdvantages: whitenMasked(returns, mask) };
}

/**
 * REINFORCE++ with a group baseline (verl `reinforce_plus_plus_baseline`): subtract the group mean score
 * (a group of one: 0), broadcast to tokens, then whiten over every unmasked token of the batch.
 */
export function reinforcePlusPlusBaselineAdvantages(batch: RewardBatch): TokenAdvantageResult {
  const prepared = prepareRewardBatch(batch);
  const { scores, groupOf, numSequences, offsets } = prepared;
  const means = groupMeanBaselines(prepared);
  const centred = new Float64Array(prepared.tokens);
  for (let i = 0; i < numSequences; i++) {
    const mean = means[groupOf[i]!]!;
    for (let t = offsets[i]!; t < offsets[i + 1]!; t++) centred[t] = scores[i]! - mean;
  }
  return { tokenAdvantages: whitenMasked(centred, prepared.mask) };
}

function rewardsOfSequence(
  batch: RewardBatch,
  prepared: PreparedRewardBatch,
  i: number,
): (t: number) => number {
  if (batch.tokenRewards !== undefined) {
    const tokenRewards = batch.tokenRewards;
    return (t) => tokenRewards[t]!;
  }
  const { offsets, mask } = prepared;
  let last = -1;
  for (let t = offsets[i + 1]! - 1; t >= offsets[i]! && last < 0; t--)
    if (mask === undefined || mask[t] === 1) last = t;
  const reward = prepared.scores[i]!;
  return (t) => (t === last ? reward : 0);
}

/** (x − mean) / sqrt(var + 1e-8) over unmasked tokens (unbiased var; 0 with one token); masked → 0. */
export function whitenMasked(values: Float64Array, mask: ArrayLike<number> | undefined): Float64Array {
  let count = 0;
  let sum = 0;
  for (let t = 0; t < values.length; t++) {
    if (mask !== undefined && mask[t] !== 1) continue;
    count++;
    sum += values[t]!;
  }
  const out = new Float64Array(values.length);
  if (count === 0) return out;
  const mean = sum / count;
  let squares = 0;
  for (let t = 0; t < values.length; t++) {
    if (mask !== undefined && mask[t] !== 1) continue;
    const d = values[t]! - mean;
    squares += d * d;
  }
  const variance = count > 1 ? squares / (count - 1) : 0;
  const scale = 1 / Math.sqrt(variance + WHITEN_EPSILON);
  for (let t = 0; t < values.length; t++) {
    if (mask === undefined || mask[t] === 1) out[t] = (values[t]! - mean) * scale;
  }
  return out;
}
