import { checkChoice, checkNumber } from '../validation/checks.js';
import {
  broadcastToTokens,
  groupMeanBaselines,
  groupUnbiasedStds,
  prepareRewardBatch,
  type RewardBatch,
  unbiasedStd,
} from './reward-batch.js';

export interface GrpoAdvantageOptions {
  /** Divide by the standard deviation (GRPO). `false` keeps only the mean baseline (Dr.GRPO). Default true. */
  readonly normalizeByStd?: boolean;
  /** Standard deviation of the response's group (GRPO) or of the whole batch's scores. Default 'group'. */
  readonly stdScope?: 'group' | 'batch';
  /** Added to the standard deviation. Default 1e-6. */
  readonly epsilon?: number;
}

/** Advantages per response and broadcast to every unmasked token (0 on masked tokens). */
export interface AdvantageResult {
  readonly sequenceAdvantages: Float64Array;
  readonly tokenAdvantages: Float64Array;
}

/**
 * GRPO group-relative advantages, as verl computes them: per group (r − mean) / (std + ε) with the
 * unbiased (n − 1) std; a group of one gets mean 0 and std 1. With `stdScope: 'batch'` the mean stays
 * per group and the std is that of all scores of the batch (a batch of one uses 1).
 */
export function grpoAdvantages(batch: RewardBatch, options: GrpoAdvantageOptions = {}): AdvantageResult {
  const normalizeByStd = options.normalizeByStd ?? true;
  const stdScope = checkChoice('stdScope', options.stdScope ?? 'group', ['group', 'batch'] as const);
  const epsilon = options.epsilon ?? 1e-6;
  checkNumber('epsilon', epsilon, { min: 0 });
  const prepared = prepareRewardBatch(batch);
  const { scores, groupOf, groupSizes, numSequences } = prepared;

  const means = groupMeanBaselines(prepared);
  // A group of one has no spread: std 1 leaves its (mean-0) advantage at its raw score.
  const stds = groupUnbiasedStds(prepared, means).map((std, g) => (groupSizes[g] === 1 ? 1 : std));
  let batchStd = 1;
  if (stdScope === 'batch' && numSequences > 1) {
    let total = 0;
    for (let i = 0; i < numSequences; i++) total += scores[i]!;
    batchStd = unbiasedStd(scores, total / numSequences);
  }

  const sequenceAdvantages = new Float64Array(numSequences);
  for (let i = 0; i < numSequences; i++) {
    const g = groupOf[i]!;
    const centred = scores[i]! - means[g]!;
    const std = stdScope === 'batch' ? batchStd : stds[g]!;
    sequenceAdvantages[i] = normalizeByStd ? centred / (std + epsilon) : centred;
  }
  return { sequenceAdvantages, tokenAdvantages: broadcastToTokens(prepared, sequenceAdvantages) };
}
