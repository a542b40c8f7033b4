import type { AdvantageResult } from './grpo-advantages.js';
import { broadcastToTokens, prepareRewardBatch, type RewardBatch } from './reward-batch.js';

/**
 * RLOO: each response's baseline is the mean score of the other responses of its group,
 * A_i = r_i − (Σ_{j≠i} r_j) / (n − 1). A group of one keeps its raw score (baseline 0), as in verl.
 */
export function rlooAdvantages(batch: RewardBatch): AdvantageResult {
  const prepared = prepareRewardBatch(batch);
  const { scores, groupOf, groupSums, groupSizes, numSequences } = prepared;
  const sequenceAdvantages = new Float64Array(numSequences);
  for (let i = 0; i < numSequences; i++) {
    const g = groupOf[i]!;
    const n = groupSizes[g]!;
    sequenceAdvantages[i] = n === 1 ? scores[i]! : scores[i]! - (groupSums[g]! - scores[i]!) / (n - 1);
  }
  return { sequenceAdvantages, tokenAdvantages: broadcastToTokens(prepared, sequenceAdvantages) };
}
