import { MoerlError } from '@moerl/core';
import {
  checkLength,
  checkMask,
  checkSequenceOffsets,
  checkValues,
  type NumberArray,
} from '../validation/checks.js';

/** Rewards of a flattened ragged batch of responses, with the prompt group of each response. */
export interface RewardBatch {
  /** Length numSequences + 1: response i owns tokens [sequenceOffsets[i], sequenceOffsets[i + 1]). */
  readonly sequenceOffsets: ArrayLike<number>;
  /** Which prompt each response answers (one id per response); responses of a prompt form a group. */
  readonly groupIds: ArrayLike<string | number>;
  /** One reward per response. Give this or `tokenRewards`. */
  readonly rewards?: NumberArray;
  /** One reward per token; a response's score is the sum of its token rewards (as in verl). */
  readonly tokenRewards?: NumberArray;
  /** 1 for tokens that count, 0 for the rest (tool output, padding). Default: all tokens count. */
  readonly responseMask?: ArrayLike<number>;
}

/** A validated reward batch with groups numbered 0..groupCount-1 in order of first appearance. */
export interface PreparedRewardBatch {
  readonly offsets: ArrayLike<number>;
  readonly numSequences: number;
  readonly tokens: number;
  readonly groupOf: Int32Array;
  readonly groupCount: number;
  /** Per-response score: the reward, or the sum of the token rewards. */
  readonly scores: Float64Array;
  /** Per group: the sum of its responses' scores (added in response order). */
  readonly groupSums: Float64Array;
  /** Per group: how many responses it holds (at least 1). */
  readonly groupSizes: Int32Array;
  readonly mask: ArrayLike<number> | undefined;
}

export function prepareRewardBatch(batch: RewardBatch): PreparedRewardBatch {
  const offsets = batch.sequenceOffsets;
  const numSequences = checkSequenceOffsets('sequenceOffsets', offsets);
  const tokens = offsets[numSequences]!;
  checkLength('groupIds', batch.groupIds, numSequences, 'response');
  if ((batch.rewards === undefined) === (batch.tokenRewards === undefined)) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `Give exactly one of rewards (per response) or tokenRewards (per token), found ${batch.rewards === undefined ? 'neither' : 'both'}`,
      { details: { field: 'rewards' } },
    );
  }
  if (batch.responseMask !== undefined) checkMask('responseMask', batch.responseMask, tokens, true);
  const scores = new Float64Array(numSequences);
  if (batch.rewards !== undefined) {
    checkValues('rewards', batch.rewards, numSequences, 'response');
    for (let i = 0; i < numSequences; i++) scores[i] = batch.rewards[i]!;
  } else {
    const tokenRewards = batch.tokenRewards!;
    checkValues('tokenRewards', tokenRewards, tokens, 'token');
    for (let i = 0; i < numSequences; i++) {
      let sum = 0;
      for (let t = offsets[i]!; t < offsets[i + 1]!; t++) sum += tokenRewards[t]!;
      scores[i] = sum;
    }
  }
  const { groupOf, groupCount } = numberGroups(batch.groupIds);
  // One pass over the responses gives every group's sum and size (groups need not be contiguous).
  const groupSums = new Float64Array(groupCount);
  const groupSizes = new Int32Array(groupCount);
  for (let i = 0; i < numSequences; i++) {
    groupSums[groupOf[i]!]! += scores[i]!;
    groupSizes[groupOf[i]!]! += 1;
  }
  return {
    offsets,
    numSequences,
    tokens,
    groupOf,
    groupCount,
    scores,
    groupSums,
    groupSizes,
    mask: batch.responseMask,
  };
}

/** Per group: the mean score, or 0 for a group of one (verl's convention: its response keeps its score). */
export function groupMeanBaselines(prepared: PreparedRewardBatch): Float64Array {
  const { groupSums, groupSizes, groupCount } = prepared;
  const means = new Float64Array(groupCount);
  for (let g = 0; g < groupCount; g++) means[g] = groupSizes[g] === 1 ? 0 : groupSums[g]! / groupSizes[g]!;
  return means;
}

/** Per group: the unbiased (n − 1) std of its scores around `means`, 0 for a group of one; one pass. */
export function groupUnbiasedStds(prepared: PreparedRewardBatch, means: Float64Array): Float64Array {
  const { scores, groupOf, groupSizes, groupCount, numSequences } = prepared;
  const squares = new Float64Array(groupCount);
  for (let i = 0; i < numSequences; i++) {
    const d = scores[i]! - means[groupOf[i]!]!;
    squares[groupOf[i]!]! += d * d;
  }
  const stds = new Float64Array(groupCount);
  for (let g = 0; g < groupCount; g++) {
    const size = groupSizes[g]!;
    stds[g] = size < 2 ? 0 : Math.sqrt(squares[g]! / (size - 1));
  }
  return stds;
}

/** Numbers group ids 0, 1, ... in order of first appearance. */
export function numberGroups(groupIds: ArrayLike<string | number>): {
  groupOf: Int32Array;
  groupCount: number;
} {
  const numbers = new Map<string | number, number>();
  const groupOf = new Int32Array(groupIds.length);
  for (let i = 0; i < groupIds.length; i++) {
    const id = groupIds[i]!;
    if (typeof id !== 'string' && !(typeof id === 'number' && Number.isFinite(id))) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `groupIds[${i}] must be a string or finite number, found ${String(id)}`,
        {
          details: { field: 'groupIds', index: i },
        },
      );
    }
    let group = numbers.get(id);
    if (group === undefined) {
      group = numbers.size;
      numbers.set(id, group);
    }
    groupOf[i] = group;
  }
  return { groupOf, groupCount: numbers.size };
}

/** Copies one value per response onto each of its tokens; masked tokens get 0. */
export function broadcastToTokens(prepared: PreparedRewardBatch, perSequence: Float64Array): Float64Array {
  const { offsets, numSequences, mask } = prepared;
  const out = new Float64Array(prepared.tokens);
  for (let i = 0; i < numSequences; i++) {
    const value = perSequence[i]!;
    for (let t = offsets[i]!; t < offsets[i + 1]!; t++)
      out[t] = mask === undefined || mask[t] === 1 ? value : 0;
  }
  return out;
}

/** Unbiased (n − 1) standard deviation of all `values` around `mean` (0 for fewer than two), float64. */
export function unbiasedStd(values: ArrayLike<number>, mean: number): number {
  const count = values.length;
  if (count < 2) return 0;
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const d = values[i]! - mean;
    sum += d * d;
  }
  return Math.sqrt(sum / (count - 1));
}
