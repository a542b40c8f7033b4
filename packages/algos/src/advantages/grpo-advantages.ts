import { checkChoice, checkNumber } from '../validation/checks.js';
import { broadcastToTokens, prepareRewardBatch, type RewardBatch, unbiasedStd } from './reward-batch.js';

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
  const { scores, groupOf, groupCount, numSequences } = prepared;

  const sums = new Float64Array(groupCount);
  const counts = new Int32Array(groupCount);
  for (let i = 0; i < numSequences; i++) {
    sums[groupOf[i]!]! += scores[i]!;
    counts[groupOf[i]!]! += 1;
  }
  const means = new Float64Array(groupCount);
  const stds = new Float64Array(groupCount);
  for (let g = 0; g < groupCount; g++) {
    const count = counts[g]!;
    means[g] = count === 1 ? 0 : sums[g]! / count;
    stds[g] = count === 1 ? 1 : unbiasedStd(scores, means[g]!, count, (i) => groupOf[i] === g);
  }
  let batchStd = 1;
  if (stdScope === 'batch' && numSequences > 1) {
    let total = 0;
    for (let i = 0; i < numSequences; i++) total += scores[i]!;
    batchStd = unbiasedStd(scores, total / numSequences, numSequences, () => true);
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
