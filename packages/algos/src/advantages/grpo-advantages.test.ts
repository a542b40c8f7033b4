import { MoerlError } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { grpoAdvantages } from './grpo-advantages.js';

// Groups: a = [1, 0, 0, 1] (mixed), b = [2, 2] (all equal), c = [5] (a group of one).
const groupIds = ['a', 'a', 'b', 'a', 'c', 'b', 'a'];
const rewards = [1, 0, 2, 0, 5, 2, 1];
const lengths = [2, 1, 3, 1, 1, 2, 1];
const sequenceOffsets = Int32Array.from([0, 2, 3, 6, 7, 8, 10, 11]);

describe('grpoAdvantages', () => {
  it('normalises by the unbiased group std; equal rewards give 0; a group of one gets mean 0, std 1', () => {
    const { sequenceAdvantages } = grpoAdvantages({ sequenceOffsets, groupIds, rewards });
    const stdA = Math.sqrt((4 * 0.25) / 3); // mean 0.5, four deviations of ±0.5, n − 1 = 3
    const expected = [
      0.5 / (stdA + 1e-6),
      -0.5 / (stdA + 1e-6),
      0,
      -0.5 / (stdA + 1e-6),
      5 / (1 + 1e-6),
      0,
      0.5 / (stdA + 1e-6),
    ];
    expected.forEach((value, i) => {
      expect(sequenceAdvantages[i]).toBeCloseTo(value, 12);
    });
  });

  it('broadcasts each advantage to the response tokens and zeroes masked tokens', () => {
    const responseMask = Uint8Array.from([1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1]);
    const { sequenceAdvantages, tokenAdvantages } = grpoAdvantages({
      sequenceOffsets,
      groupIds,
      rewards,
      responseMask,
    });
    let t = 0;
    lengths.forEach((length, i) => {
      for (let k = 0; k < length; k++, t++) {
        expect(tokenAdvantages[t]).toBe(responseMask[t] === 1 ? sequenceAdvantages[i] : 0);
      }
    });
  });

  it('Dr.GRPO drops the std: advantages are reward − group mean', () => {
    const { sequenceAdvantages } = grpoAdvantages(
      { sequenceOffsets, groupIds, rewards },
      { normalizeByStd: false },
    );
    expect(Array.from(sequenceAdvantages)).toEqual([0.5, -0.5, 0, -0.5, 5, 0, 0.5]);
  });

  it('batch-level std keeps the group mean and divides by the std of all rewards', () => {
    const { sequenceAdvantages } = grpoAdvantages(
      { sequenceOffsets, groupIds, rewards },
      { stdScope: 'batch' },
    );
    // Batch mean 11/7; squared deviations sum to 868/49; n − 1 = 6.
    const std = Math.sqrt(868 / 49 / 6) + 1e-6;
    const expected = [0.5 / std, -0.5 / std, 0, -0.5 / std, 5 / std, 0, 0.5 / std];
    expected.forEach((value, i) => {
      expect(sequenceAdvantages[i]).toBeCloseTo(value, 12);
    });
  });

  it('sums token rewards into the response score', () => {
    const tokenRewards = new Float64Array(11);
    // Spread each response's reward over its tokens.
    lengths.forEach((length, i) => {
      for (let t = sequenceOffsets[i]!; t < sequenceOffsets[i + 1]!; t++)
        tokenRewards[t] = rewards[i]! / length;
    });
    const fromTokens = grpoAdvantages({ sequenceOffsets, groupIds, tokenRewards });
    const fromSequences = grpoAdvantages({ sequenceOffsets, groupIds, rewards });
    fromSequences.sequenceAdvantages.forEach((value, i) => {
      expect(fromTokens.sequenceAdvantages[i]).toBeCloseTo(value, 9);
    });
  });

  it('names the field of a bad input', () => {
    const check = (run: () => unknown, code: string, field: string) => {
      try {
        run();
        expect.fail('expected a MoerlError');
      } catch (error) {
        expect(MoerlError.isInstance(error)).toBe(true);
        expect((error as MoerlError).code).toBe(code);
        expect((error as MoerlError).details.field).toBe(field);
      }
    };
    check(
      () => grpoAdvantages({ sequenceOffsets, groupIds, rewards: [1, 2] }),
      'INVALID_ARGUMENT',
      'rewards',
    );
    check(
      () => grpoAdvantages({ sequenceOffsets, groupIds: ['a'], rewards }),
      'INVALID_ARGUMENT',
      'groupIds',
    );
    check(
      () => grpoAdvantages({ sequenceOffsets, groupIds, rewards: [1, 0, 2, Number.NaN, 5, 2, 1] }),
      'NON_FINITE',
      'rewards',
    );
    check(() => grpoAdvantages({ sequenceOffsets, groupIds }), 'INVALID_ARGUMENT', 'rewards');
    const tokenRewards = new Float64Array(11);
    tokenRewards[4] = Number.POSITIVE_INFINITY;
    check(() => grpoAdvantages({ sequenceOffsets, groupIds, tokenRewards }), 'NON_FINITE', 'tokenRewards');
    check(
      () => grpoAdvantages({ sequenceOffsets, groupIds, tokenRewards: [1] }),
      'INVALID_ARGUMENT',
      'tokenRewards',
    );
    check(
      () => grpoAdvantages({ sequenceOffsets: [1, 2], groupIds: ['a'], rewards: [1] }),
      'INVALID_ARGUMENT',
      'sequenceOffsets',
    );
    check(
      () => grpoAdvantages({ sequenceOffsets, groupIds, rewards, responseMask: [1, 1] }),
      'INVALID_ARGUMENT',
      'responseMask',
    );
  });
});
