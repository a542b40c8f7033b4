import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyRun } from '../__fixtures__/tiny-run.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import type { StepMetrics } from '../metrics/step-metrics.js';
import { armConfig, type StudyRun, stabilityStudy, studyVerdict, summarizeArm } from './stability-study.js';
import { STUDY_ARMS } from './study-arms.js';

let root = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'moerl-study-'));
});
afterAll(async () => rm(root, { recursive: true, force: true }));

function run(
  arm: string,
  initial: number,
  final: number,
  klFree: number[],
  klReplay: number[],
  collapsed = false,
): StudyRun {
  const metrics = klFree.map(
    (value, index) =>
      ({
        step: index + 1,
        rewardMean: 0.5,
        klFree: value,
        klReplay: klReplay[index]!,
        extremeTokenFractionFree: 0.01,
        extremeTokenFractionReplay: 0,
        maxAbsDeltaFree: 2,
        maxAbsDeltaReplay: 0.1,
        klFreeShareOnFlippedTokens: 0.6,
        tokensWithRoutingDifference: 0.1,
        ...(index === klFree.length - 1 ? { evalAccuracy: final } : {}),
      }) as StepMetrics,
  );
  return {
    name: arm,
    arm,
    seed: 0,
    config: {},
    metrics,
    initialEvalAccuracy: initial,
    collapse: { collapsed, reasons: collapsed ? ['x'] : [], step: collapsed ? 1 : Number.NaN },
    wallSeconds: 1,
  };
}

describe('summarizeArm and studyVerdict', () => {
  it('pools seeds: accuracy mean ± sd, gain with a normal-approximation CI, per-step KL ratio quantiles', () => {
    const runs = [run('R3', 0.3, 0.5, [4, 1, 9, 2], [1, 1, 1, 1]), run('R3', 0.3, 0.4, [3, 5], [1, 1])];
    const summary = summarizeArm('R3', runs, 100);
    expect(summary.finalEvalAccuracy.mean).toBeCloseTo(0.45, 12);
    expect(summary.finalEvalAccuracy.sd).toBeCloseTo(Math.sqrt(0.005), 12);
    expect(summary.gain.value).toBeCloseTo(0.15, 12);
    const se = Math.sqrt((0.3 * 0.7) / 200 + (0.45 * 0.55) / 200);
    expect(summary.gain.low).toBeCloseTo(0.15 - 1.96 * se, 12);
    // Ratios 4, 1, 9, 2, 3, 5 → sorted 1 2 3 4 5 9: the median (index 3) is 4, p90 (index 5) 9.
    expect(summary.klRatioMedian).toBe(4);
    expect(summary.klRatioP90).toBe(9);
    expect(summary.collapsed).toBe(0);
    expect(summary.maxAbsDeltaFree).toBe(2);
    expect(summary.maxAbsDeltaReplay).toBe(0.1);
  });

  it('the verdict counts collapses per arm, or says plainly that none happened', () => {
    const free = summarizeArm(
      'free',
      [run('free', 0.3, 0.1, [5], [1], true), run('free', 0.3, 0.35, [5], [1])],
      100,
    );
    const r3 = summarizeArm('R3', [run('R3', 0.3, 0.4, [5], [1]), run('R3', 0.3, 0.45, [5], [1])], 100);
    expect(studyVerdict([free, r3])).toMatch(/^collapsed runs: free 1\/2, R3 0\/2\./);
    const calm = summarizeArm('free', [run('free', 0.3, 0.35, [5], [1])], 100);
    expect(studyVerdict([calm])).toMatch(/^no run collapsed at this scale \(free 0\/1\)/);
    expect(studyVerdict([calm])).toContain('5.00× at the median step');
  });

  it('every arm is a valid config over the presets the study runs', async () => {
    for (const preset of ['demo', 'r3-study']) {
      const base = await resolveRunConfig({ preset });
      for (const arm of Object.keys(STUDY_ARMS))
        expect(() => armConfig(base, arm, 0), `${preset} ${arm}`).not.toThrow();
    }
    // The check that catches a bad arm up front: bf16 activations on an fp32 engine.
    const base = await resolveRunConfig({ preset: 'demo' });
    expect(() =>
      armConfig({ ...base, rollout: { ...base.rollout, activations: 'bf16' } }, 'free', 0),
    ).not.toThrow();
    await expect(resolveRunConfig({ preset: 'demo', overrides: ['rollout.precision=fp32'] })).rejects.toThrow(
      /bf16 activations need rollout\.precision bf16 or fp8, found fp32/,
    );
  });

  it('refuses an unknown arm', async () => {
    const base = await resolveRunConfig({ config: tinyRun });
    expect(() => armConfig(base, 'R4', 0)).toThrow(/Unknown study arm "R4"/);
    expect(armConfig(base, 'free-tis', 7)).toMatchObject({
      seed: 7,
      name: 'free-tis-s7',
      algorithm: { importanceSampling: 'truncate' },
    });
  });
});

describe('stabilityStudy (smoke run on a tiny model)', () => {
  it('runs arms × seeds, detects collapses, writes a report, and computes a verdict', async () => {
    const base = await resolveRunConfig({ config: { ...tinyRun, train: { steps: 2, miniBatches: 2 } } });
    const result = await stabilityStudy({ base, arms: ['free', 'R3'], seeds: [1, 2], directory: root });
    expect(result.runs.map((entry) => entry.name)).toEqual(['free-s1', 'R3-s1', 'free-s2', 'R3-s2']);
    expect(result.summaries.map((summary) => summary.seeds)).toEqual([2, 2]);
    for (const entry of result.runs) expect(entry.metrics).toHaveLength(2);
    expect(result.verdict.length).toBeGreaterThan(20);
    const html = await readFile(result.reportPath, 'utf8');
    expect(html).toContain('R3-s2');
    expect(html).toContain('<h2>Verdict</h2>');
    expect(html).toContain('within 10 steps');

    // The same study with the seeds in two child processes: the same runs, step for step, apart from clocks.
    const parallel = await stabilityStudy({
      base,
      arms: ['free', 'R3'],
      seeds: [1, 2],
      directory: join(root, 'parallel'),
      jobs: 2,
    });
    const clockless = (runs: readonly StudyRun[]) =>
      runs.map((entry) => ({
        name: entry.name,
        initial: entry.initialEvalAccuracy,
        metrics: entry.metrics.map((row) =>
          Object.fromEntries(Object.entries(row).filter(([key]) => !/time|second/i.test(key))),
        ),
      }));
    expect(clockless(parallel.runs)).toEqual(clockless(result.runs));
    expect(parallel.verdict).toBe(result.verdict);
  });

  it('a parallel study reports a failing run with its error', async () => {
    const base = await resolveRunConfig({ config: { ...tinyRun, train: { steps: 1 } } });
    const directory = join(root, 'occupied');
    await stabilityStudy({ base, arms: ['free'], seeds: [3], directory });
    // The run directory now holds a run: without force, the child process refuses it and says so.
    await expect(
      stabilityStudy({ base, arms: ['free'], seeds: [3, 4], directory, jobs: 2 }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/free-s3 already holds a run/),
    });
  });
});
