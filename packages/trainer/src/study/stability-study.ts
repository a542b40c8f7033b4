import { join } from 'node:path';
import { MoerlError } from '@moerl/core';
import { deepMerge, validateRunConfig } from '../config/resolve-run-config.js';
import type { RunConfig } from '../config/run-config-schema.js';
import { finiteMax, finiteMean, finiteValues } from '../metrics/finite-stats.js';
import type { RunRecord } from '../metrics/step-metrics.js';
import { writeHtmlReport } from '../report/html-report.js';
import { tableCell, textTable } from '../report/text-table.js';
import type { RunEvents } from '../run/run-events.js';
import { trainRun } from '../run/train-run.js';
import {
  type CollapseCriteria,
  type CollapseVerdict,
  DEFAULT_COLLAPSE_CRITERIA,
  detectCollapse,
} from './collapse.js';
import { runInWorkers, type WorkerRunResult } from './run-in-workers.js';
import { STUDY_ARMS } from './study-arms.js';

type Plain = Record<string, unknown>;

export interface StudyRun extends RunRecord {
  readonly arm: string;
  readonly seed: number;
  readonly collapse: CollapseVerdict;
  readonly wallSeconds: number;
}

export interface ArmSummary {
  readonly arm: string;
  readonly seeds: number;
  readonly collapsed: number;
  readonly initialEvalAccuracy: number;
  /** Mean and sample standard deviation over seeds of the last held-out accuracy. */
  readonly finalEvalAccuracy: { readonly mean: number; readonly sd: number };
  /** Accuracy on problems the warm start trained on, before RL and at the end (means over seeds). */
  readonly seenEvalAccuracy: { readonly before: number; readonly after: number };
  /** Final − initial held-out accuracy over all seeds' problems pooled, with a normal-approximation 95% CI. */
  readonly gain: { readonly value: number; readonly low: number; readonly high: number };
  readonly meanKlFree: number;
  readonly meanKlReplay: number;
  /** The per-step ratio KL free / KL replay, pooled over seeds: its median and 90th percentile. */
  readonly klRatioMedian: number;
  readonly klRatioP90: number;
  readonly extremeTokenFractionFree: number;
  readonly extremeTokenFractionReplay: number;
  readonly maxAbsDeltaFree: number;
  readonly maxAbsDeltaReplay: number;
  readonly klFreeShareOnFlippedTokens: number;
  readonly tokensWithRoutingDifference: number;
}

export interface StabilityStudyOptions {
  readonly base: RunConfig;
  readonly arms: readonly string[];
  readonly seeds: readonly number[];
  readonly directory: string;
  readonly criteria?: CollapseCriteria;
  readonly eventsFor?: (name: string) => RunEvents & { stop?(): void };
  readonly signal?: AbortSignal;
  readonly title?: string;
  /** Replace run directories that already hold a run (otherwise refused). */
  readonly force?: boolean;
  /**
   * Child processes running seeds side by side (default 1: every run in this process). Each process runs
   * one seed's arms one after another, sharing their warm start; results do not depend on it.
   */
  readonly jobs?: number;
}

export interface StabilityStudyResult {
  readonly runs: readonly StudyRun[];
  readonly summaries: readonly ArmSummary[];
  readonly verdict: string;
  readonly reportPath: string;
}

function sd(values: readonly number[]): number {
  if (values.length < 2) return Number.NaN;
  const m = finiteMean(values);
  return Math.sqrt(values.reduce((sum, value) => sum + (value - m) ** 2, 0) / (values.length - 1));
}
function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** The config of one arm and seed. */
export function armConfig(base: RunConfig, arm: string, seed: number): RunConfig {
  const override = STUDY_ARMS[arm];
  if (override === undefined) {
    throw new MoerlError(
      'CONFIG_INVALID',
      `Unknown study arm "${arm}"; arms: ${Object.keys(STUDY_ARMS).join(', ')}`,
      { details: { field: 'arms', found: arm, allowed: Object.keys(STUDY_ARMS) } },
    );
  }
  return validateRunConfig(
    deepMerge(deepMerge(base as unknown as Plain, override), { name: `${arm}-s${seed}`, seed }),
    `arm ${arm}`,
  );
}

/** Per-arm figures over seeds; exported for tests on synthetic runs. */
export function summarizeArm(arm: string, runs: readonly StudyRun[], evalSize: number): ArmSummary {
  const finals = runs.map(
    (run) => run.metrics.filter((row) => row.evalAccuracy !== undefined).at(-1)?.evalAccuracy ?? Number.NaN,
  );
  const initials = runs.map((run) => run.initialEvalAccuracy ?? Number.NaN);
  const before = finiteMean(initials);
  const after = finiteMean(finals);
  const n = evalSize * runs.length;
  const se = Math.sqrt((before * (1 - before)) / n + (after * (1 - after)) / n);
  const rows = runs.flatMap((run) => run.metrics);
  const ratios = finiteValues(rows.map((row) => row.klFree / row.klReplay));
  return {
    arm,
    seeds: runs.length,
    collapsed: runs.filter((run) => run.collapse.collapsed).length,
    initialEvalAccuracy: before,
    finalEvalAccuracy: { mean: after, sd: sd(finiteValues(finals)) },
    seenEvalAccuracy: {
      before: finiteMean(runs.map((run) => run.initialSeenEvalAccuracy)),
      after: finiteMean(
        runs.map(
          (run) => run.metrics.filter((row) => row.seenEvalAccuracy !== undefined).at(-1)?.seenEvalAccuracy,
        ),
      ),
    },
    gain: { value: after - before, low: after - before - 1.96 * se, high: after - before + 1.96 * se },
    meanKlFree: finiteMean(rows.map((row) => row.klFree)),
    meanKlReplay: finiteMean(rows.map((row) => row.klReplay)),
    klRatioMedian: quantile(ratios, 0.5),
    klRatioP90: quantile(ratios, 0.9),
    extremeTokenFractionFree: finiteMean(rows.map((row) => row.extremeTokenFractionFree)),
    extremeTokenFractionReplay: finiteMean(rows.map((row) => row.extremeTokenFractionReplay)),
    maxAbsDeltaFree: finiteMax(rows.map((row) => row.maxAbsDeltaFree)),
    maxAbsDeltaReplay: finiteMax(rows.map((row) => row.maxAbsDeltaReplay)),
    klFreeShareOnFlippedTokens: finiteMean(rows.map((row) => row.klFreeShareOnFlippedTokens)),
    tokensWithRoutingDifference: finiteMean(rows.map((row) => row.tokensWithRoutingDifference)),
  };
}

const pct = (value: number) => `${(100 * value).toFixed(1)}`;

/** The study's conclusion, computed from the summaries: collapse counts first, then what replay changed. */
export function studyVerdict(summaries: readonly ArmSummary[]): string {
  const parts: string[] = [];
  const counts = summaries.map((summary) => `${summary.arm} ${summary.collapsed}/${summary.seeds}`);
  const anyCollapse = summaries.some((summary) => summary.collapsed > 0);
  const free = summaries.find((summary) => summary.arm === 'free');
  const r3 = summaries.find((summary) => summary.arm === 'R3');
  if (anyCollapse) parts.push(`collapsed runs: ${counts.join(', ')}.`);
  else parts.push(`no run collapsed at this scale (${counts.join(', ')}).`);
  const reference = r3 ?? free;
  if (reference !== undefined && Number.isFinite(reference.klRatioMedian)) {
    parts.push(
      `Replaying the engine's routing cut the trainer–engine KL by ${reference.klRatioMedian.toFixed(2)}× at the median step (${reference.klRatioP90.toFixed(1)}× at the 90th percentile), max |Δlogp| from ${reference.maxAbsDeltaFree.toFixed(2)} to ${reference.maxAbsDeltaReplay.toFixed(2)}, tokens beyond ln 2 from ${pct(reference.extremeTokenFractionFree)}% to ${pct(reference.extremeTokenFractionReplay)}%; ${pct(reference.tokensWithRoutingDifference)}% of tokens were routed differently and carried ${pct(reference.klFreeShareOnFlippedTokens)}% of the free-routing KL.`,
    );
  }
  if (free !== undefined && r3 !== undefined) {
    const better = r3.gain.value - free.gain.value;
    parts.push(
      `Held-out accuracy gain: R3 ${pct(r3.gain.value)} points [${pct(r3.gain.low)}, ${pct(r3.gain.high)}], free ${pct(free.gain.value)} points [${pct(free.gain.low)}, ${pct(free.gain.high)}] (difference ${pct(better)}).`,
    );
  }
  return parts.join(' ');
}

/** Runs every arm over every seed (warm starts shared per seed, seeds side by side with `jobs`), detects collapses, summarises, reports. */
export async function stabilityStudy(options: StabilityStudyOptions): Promise<StabilityStudyResult> {
  const criteria = options.criteria ?? DEFAULT_COLLAPSE_CRITERIA;
  const configs = options.seeds.flatMap((seed) =>
    options.arms.map((arm) => ({ arm, seed, config: armConfig(options.base, arm, seed) })),
  );
  const collapseOf = (config: RunConfig, result: Omit<WorkerRunResult, 'name' | 'wallSeconds'>) =>
    detectCollapse(
      result.metrics,
      result.initialEvalAccuracy,
      criteria,
      config.train.miniBatches * config.train.epochs,
    );
  const runs: StudyRun[] = [];
  const record = (arm: string, seed: number, config: RunConfig, result: WorkerRunResult) =>
    runs.push({
      name: config.name,
      arm,
      seed,
      config,
      metrics: result.metrics,
      initialEvalAccuracy: result.initialEvalAccuracy,
      initialSeenEvalAccuracy: result.initialSeenEvalAccuracy,
      collapse: collapseOf(config, result),
      wallSeconds: result.wallSeconds,
    });
  const directoryOf = (config: RunConfig) => join(options.directory, config.name);
  if ((options.jobs ?? 1) > 1) {
    const groups = options.seeds.map((seed) =>
      configs
        .filter((entry) => entry.seed === seed)
        .map(({ config }) => ({ config, directory: directoryOf(config) })),
    );
    const results = await runInWorkers(groups, {
      jobs: options.jobs ?? 1,
      force: options.force === true,
      ...(options.eventsFor === undefined ? {} : { eventsFor: options.eventsFor }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    for (const { arm, seed, config } of configs) {
      const result = results.get(config.name);
      if (result !== undefined) record(arm, seed, config, result);
    }
  } else {
    for (const { arm, seed, config } of configs) {
      const events = options.eventsFor?.(config.name);
      const start = performance.now();
      try {
        const result = await trainRun({
          config,
          directory: directoryOf(config),
          ...(options.force === undefined ? {} : { force: options.force }),
          ...(events === undefined ? {} : { events }),
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        });
        record(arm, seed, config, {
          name: config.name,
          metrics: result.metrics,
          initialEvalAccuracy: result.initialEvalAccuracy,
          initialSeenEvalAccuracy: result.initialSeenEvalAccuracy,
          wallSeconds: (performance.now() - start) / 1000,
        });
      } finally {
        events?.stop?.();
      }
      if (options.signal?.aborted === true) break;
    }
  }
  const summaries = options.arms.map((arm) =>
    summarizeArm(
      arm,
      runs.filter((run) => run.arm === arm),
      options.base.eval.size,
    ),
  );
  const reportPath = join(options.directory, 'report.html');
  const verdict = studyVerdict(summaries);
  const collapses = runs
    .map(
      (run) =>
        `${run.name}: ${run.collapse.collapsed ? `collapsed at step ${run.collapse.step} (${run.collapse.reasons.join('; ')})` : 'no collapse'}`,
    )
    .join('\n');
  await writeHtmlReport(
    reportPath,
    runs,
    options.title ?? `moerl study: ${options.arms.join(' vs ')} over seeds ${options.seeds.join(', ')}`,
    [
      { heading: 'Verdict', text: verdict },
      { heading: 'Arms (means over seeds)', text: armTable(summaries) },
      {
        heading: 'Collapse criteria, fixed before the runs, and each run',
        text: `${describeCriteria(criteria)}\n\n${collapses}`,
      },
    ],
  );
  return { runs, summaries, verdict, reportPath };
}

/** The collapse criteria in words, as the report and docs state them. */
export function describeCriteria(criteria: CollapseCriteria): string {
  return [
    `A run has collapsed when any of these holds:`,
    `- its last held-out accuracy is ${criteria.accuracyDrop} or more below the accuracy RL started from;`,
    `- its rollout reward (${criteria.smoothing}-step moving mean) fell to half its running peak (a peak of at least ${criteria.minimumPeakReward}) within ${criteria.rewardWindow} steps, and is still at or below half the peak at the end;`,
    `- more than half of its optimizer updates were skipped as non-finite.`,
  ].join('\n');
}

/** One row per arm: seeds, collapses, accuracy (mean ± sd), gain with CI, KL free/replay and tails. */
export function armTable(summaries: readonly ArmSummary[]): string {
  const header = [
    'arm',
    'collapsed',
    'eval acc before',
    'eval acc after (±sd)',
    'gain [95% CI]',
    'warm-start problems before/after',
    'KL free',
    'KL replay',
    'KL ratio med/p90',
    '>ln2 free',
    '>ln2 replay',
    'max|Δ| free/replay',
  ];
  const body = summaries.map((s) => [
    s.arm,
    `${s.collapsed}/${s.seeds}`,
    tableCell(s.initialEvalAccuracy, 3),
    `${tableCell(s.finalEvalAccuracy.mean, 3)} ±${tableCell(s.finalEvalAccuracy.sd, 3)}`,
    `${tableCell(s.gain.value, 3)} [${tableCell(s.gain.low, 3)}, ${tableCell(s.gain.high, 3)}]`,
    `${tableCell(s.seenEvalAccuracy.before, 3)}/${tableCell(s.seenEvalAccuracy.after, 3)}`,
    tableCell(s.meanKlFree, 0, true),
    tableCell(s.meanKlReplay, 0, true),
    `${tableCell(s.klRatioMedian, 2)}/${tableCell(s.klRatioP90, 1)}`,
    tableCell(s.extremeTokenFractionFree, 4),
    tableCell(s.extremeTokenFractionReplay, 4),
    `${tableCell(s.maxAbsDeltaFree, 2)}/${tableCell(s.maxAbsDeltaReplay, 2)}`,
  ]);
  return textTable(header, body);
}
