import { describe, expect, it } from 'vitest';
import { syntheticRun } from '../__fixtures__/synthetic-runs.js';
import type { RunRecord, StepMetrics } from '../metrics/step-metrics.js';
import { groupRunsBySeed, klRatios, pooledHistogram, seedBands } from './seed-groups.js';

const bare = (name: string, config: unknown, rows: Partial<StepMetrics>[] = []): RunRecord => ({
  name,
  config,
  metrics: rows.map((row, index) => ({ step: index + 1, ...row }) as StepMetrics),
});

describe('groupRunsBySeed', () => {
  it('groups <arm>-s<seed> names by arm, in the order the arms first appear', () => {
    const runs = ['free-s0', 'R3-s0', 'free-s1', 'R3-s1', 'plain', 'free-tis-s0'].map((name) =>
      bare(name, {}),
    );
    const groups = groupRunsBySeed(runs);
    expect(groups.map((group) => [group.label, group.runs.map((run) => run.name)])).toEqual([
      ['free', ['free-s0', 'free-s1']],
      ['R3', ['R3-s0', 'R3-s1']],
      ['plain', ['plain']],
      // One seed only: the run keeps its own name.
      ['free-tis-s0', ['free-tis-s0']],
    ]);
  });

  it('groups other runs by their config minus name and seed; runs without a seed stay alone', () => {
    const runs = [
      bare('lr1-a', { name: 'lr1-a', seed: 1, train: { lr: 1, epochs: 2 } }),
      bare('lr1-b', { name: 'lr1-b', seed: 2, train: { epochs: 2, lr: 1 } }),
      bare('lr2', { seed: 1, train: { lr: 2, epochs: 2 } }),
      bare('x', { train: { lr: 1 } }),
      bare('y', { train: { lr: 1 } }),
    ];
    const groups = groupRunsBySeed(runs);
    expect(groups.map((group) => [group.label, group.runs.length])).toEqual([
      ['lr1', 2],
      ['lr2', 1],
      ['x', 1],
      ['y', 1],
    ]);
  });

  it('keeps labels unique when an arm and a run share a name', () => {
    const groups = groupRunsBySeed([bare('free-s0', {}), bare('free-s1', {}), bare('free', {})]);
    expect(groups.map((group) => group.label)).toEqual(['free', 'free (2)']);
  });
});

describe('seedBands', () => {
  const seeds = [0, 1, 2].map((seed) => syntheticRun(`free-s${seed}`, false, 12, seed + 3));
  const groups = groupRunsBySeed(seeds);

  it('gives mean, min and max over the seeds at every step', () => {
    const rows = seedBands(groups, [{ label: 'reward', value: (row) => row.rewardMean }]);
    expect(rows).toHaveLength(12);
    for (const step of [1, 5, 12]) {
      const values = seeds.map((run) => run.metrics[step - 1]!.rewardMean);
      const row = rows.find((candidate) => candidate.step === step)!;
      expect(row.group).toBe('free');
      expect(row.n).toBe(3);
      expect(row.min).toBe(Math.min(...values));
      expect(row.max).toBe(Math.max(...values));
      expect(row.mean).toBeCloseTo((values[0]! + values[1]! + values[2]!) / 3, 14);
      expect(row.min).toBeLessThan(row.max);
    }
  });

  it('puts the value before RL at step 0 and skips steps without a value', () => {
    const rows = seedBands(groups, [
      {
        label: 'held-out',
        value: (row) => row.evalAccuracy,
        initial: (run) => run.initialEvalAccuracy,
      },
    ]);
    expect(rows.map((row) => row.step)).toEqual([0, 4, 8, 12]);
    const initials = seeds.map((run) => run.initialEvalAccuracy!);
    expect(rows[0]).toMatchObject({ min: Math.min(...initials), max: Math.max(...initials), n: 3 });
    expect(rows[0]!.mean).toBeCloseTo((initials[0]! + initials[1]! + initials[2]!) / 3, 14);
  });

  it('counts only the seeds that reached a step, and drops values ≤ 0 for log scales', () => {
    const runs = [
      bare('a-s0', {}, [{ klFree: 1 }, { klFree: 0 }, { klFree: 3 }]),
      bare('a-s1', {}, [{ klFree: 2 }, { klFree: 4 }]),
    ];
    const rows = seedBands(groupRunsBySeed(runs), [{ label: 'kl', value: (row) => row.klFree }], {
      positiveOnly: true,
    });
    expect(rows.map(({ step, mean, min, max, n }) => ({ step, mean, min, max, n }))).toEqual([
      { step: 1, mean: 1.5, min: 1, max: 2, n: 2 },
      { step: 2, mean: 4, min: 4, max: 4, n: 1 },
      { step: 3, mean: 3, min: 3, max: 3, n: 1 },
    ]);
  });
});

describe('pooledHistogram', () => {
  it('sums counts per bin over steps and runs, skipping steps without the histogram', () => {
    const runs = [
      bare('a', {}, [{ absDeltaHistogramFree: [1, 2, 3] }, {}, { absDeltaHistogramFree: [0, 1, 0] }]),
      bare('b', {}, [{ absDeltaHistogramFree: [5, 0, 1, 7] }]),
    ];
    expect(pooledHistogram(runs, 'absDeltaHistogramFree')).toEqual([6, 3, 4, 7]);
    expect(pooledHistogram(runs, 'absDeltaHistogramReplay')).toBeUndefined();
  });
});

describe('klRatios', () => {
  it('lists every finite positive per-step ratio of every run', () => {
    const runs = [
      bare('a', {}, [
        { klFree: 4, klReplay: 2 },
        { klFree: 1, klReplay: 0 },
      ]),
      bare('b', {}, [
        { klFree: Number.NaN, klReplay: 1 },
        { klFree: 3, klReplay: 1 },
      ]),
    ];
    expect(klRatios(runs)).toEqual([
      { run: 'a', step: 1, ratio: 2 },
      { run: 'b', step: 2, ratio: 3 },
    ]);
  });
});
