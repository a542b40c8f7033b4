import { grpoAdvantages, reinforcePlusPlusBaselineAdvantages, rlooAdvantages } from '@moerl/algos';
import type { RunConfig } from '../config/run-config-schema.js';

/** Per-token advantages of the configured estimator, for responses laid out by `sequenceOffsets`. */
export function tokenAdvantages(
  estimator: RunConfig['algorithm']['advantage'],
  batch: {
    readonly sequenceOffsets: Int32Array;
    readonly groupIds: readonly string[];
    readonly rewards: Float64Array;
  },
): Float64Array {
  const input = { sequenceOffsets: batch.sequenceOffsets, groupIds: batch.groupIds, rewards: batch.rewards };
  switch (estimator) {
    case 'grpo':
      return grpoAdvantages(input).tokenAdvantages;
    case 'dr-grpo':
      return grpoAdvantages(input, { normalizeByStd: false }).tokenAdvantages;
    case 'rloo':
      return rlooAdvantages(input).tokenAdvantages;
    case 'reinforce++':
      return reinforcePlusPlusBaselineAdvantages(input).tokenAdvantages;
  }
}
