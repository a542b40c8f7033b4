import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { grpoAdvantages } from './grpo-advantages.js';
import { reinforcePlusPlusBaselineAdvantages } from './reinforce-plus-plus.js';
import { groupMeanBaselines, groupUnbiasedStds, prepareRewardBatch } from './reward-batch.js';
import { rlooAdvantages } from './rloo-advantages.js';

/** Random layouts: unsorted, interleaved group ids (numbers and strings), groups of one, ragged lengths. */
const layouts = fc
  .array(
    fc.record({
      group: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constantFrom('a', 'b', 'c')),
      // Small integers give ties (equal-reward groups) as well as spread.
      reward: fc.oneof(
        fc.integer({ min: -3, max: 3 }),
        fc.double({ min: -10, max: 10, noNaN: true, noDefaultInfinity: true }),
      ),
      length: fc.integer({ min: 1, max: 3 }),
    }),
    { minLength: 1, maxLength: 14 },
  )
  .map((responses) => {
    const sequenceOffsets = new Int32Array(responses.length + 1);
    responses.forEach((response, i) => {
      sequenceOffsets[i + 1] = sequenceOffsets[i]! + response.length;
    });
    return {
      sequenceOffsets,
      groupIds: responses.map((response) => response.group),
      rewards: responses.map((response) => response.reward),
    };
  });

type Layout = { sequenceOffsets: Int32Array; groupIds: (string | number)[]; rewards: number[] };

/** The naive way: for every response, scan the batch for the members of its group. */
function membersOf(layout: Layout, i: number): number[] {
  return layout.rewards.filter((_, j) => layout.groupIds[j] === layout.groupIds[i]);
}
const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
const naiveMean = (members: number[]) => (members.length === 1 ? 0 : sum(members) / members.length);
const naiveStd = (members: number[], mean: number) =>
  members.length < 2 ? 0 : Math.sqrt(sum(members.map((r) => (r - mean) ** 2)) / (members.length - 1));

function expectClose(actual: ArrayLike<number>, expected: number[]): void {
  expect(actual.length).toBe(expected.length);
  expected.forEach((value, i) => {
    expect(Math.abs(actual[i]! - value)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(value)));
  });
}

describe('prepareRewardBatch group statistics', () => {
  it('sums, sizes, mean baselines and stds agree with a naive per-group scan (property)', () => {
    fc.assert(
      fc.property(layouts, (layout) => {
        const prepared = prepareRewardBatch(layout);
        const means = groupMeanBaselines(prepared);
        const stds = groupUnbiasedStds(prepared, means);
        layout.rewards.forEach((_, i) => {
          const members = membersOf(layout, i);
          const g = prepared.groupOf[i]!;
          expect(prepared.groupSizes[g]).toBe(members.length);
          expectClose([prepared.groupSums[g]!], [sum(members)]);
          expectClose([means[g]!], [naiveMean(members)]);
          expectClose([stds[g]!], [naiveStd(members, naiveMean(members))]);
        });
        expect(sum([...prepared.groupSizes])).toBe(layout.rewards.length);
      }),
    );
  });
});

describe('group advantages agree with naive per-group implementations (property)', () => {
  it('GRPO (group and batch std) and Dr.GRPO', () => {
    const epsilon = 1e-6;
    fc.assert(
      fc.property(layouts, (layout) => {
        const { rewards } = layout;
        const batchMean = sum(rewards) / rewards.length;
        const batchStd = rewards.length > 1 ? naiveStd(rewards, batchMean) : 1;
        const naive = (scope: 'group' | 'batch' | 'none') =>
          rewards.map((reward, i) => {
            const members = membersOf(layout, i);
            const mean = naiveMean(members);
            if (scope === 'none') return reward - mean;
            const std = scope === 'batch' ? batchStd : members.length === 1 ? 1 : naiveStd(members, mean);
            return (reward - mean) / (std + epsilon);
          });
        expectClose(grpoAdvantages(layout).sequenceAdvantages, naive('group'));
        expectClose(grpoAdvantages(layout, { stdScope: 'batch' }).sequenceAdvantages, naive('batch'));
        expectClose(grpoAdvantages(layout, { normalizeByStd: false }).sequenceAdvantages, naive('none'));
      }),
    );
  });

  it('RLOO', () => {
    fc.assert(
      fc.property(layouts, (layout) => {
        const expected = layout.rewards.map((reward, i) => {
          const members = membersOf(layout, i);
          return members.length === 1 ? reward : reward - (sum(members) - reward) / (members.length - 1);
        });
        expectClose(rlooAdvantages(layout).sequenceAdvantages, expected);
      }),
    );
  });

  it('REINFORCE++ with a group baseline', () => {
    fc.assert(
      fc.property(layouts, (layout) => {
        const centred: number[] = [];
        layout.rewards.forEach((reward, i) => {
          const tokens = layout.sequenceOffsets[i + 1]! - layout.sequenceOffsets[i]!;
          for (let t = 0; t < tokens; t++) centred.push(reward - naiveMean(membersOf(layout, i)));
        });
        const mean = sum(centred) / centred.length;
        const variance = centred.length > 1 ? naiveStd(centred, mean) ** 2 : 0;
        const expected = centred.map((value) => (value - mean) / Math.sqrt(variance + 1e-8));
        expectClose(reinforcePlusPlusBaselineAdvantages(layout).tokenAdvantages, expected);
      }),
    );
  });
});
