import type { RunRecord } from '../metrics/step-metrics.js';
import { summarizeRun } from '../report/run-summary.js';

const cell = (value: number, digits: number, exponent = false) =>
  !Number.isFinite(value) ? '–' : exponent ? value.toExponential(2) : value.toFixed(digits);

/** A fixed-width table of the figures that show the R3 effect, one row per run. */
export function summaryTable(runs: readonly (RunRecord & { readonly wallSeconds?: number })[]): string {
  const header = [
    'run',
    'eval acc before RL',
    'eval acc',
    'reward (last ¼)',
    'KL free',
    'KL replay',
    '|Δ|>ln2 free',
    '|Δ|>ln2 replay',
    'routing Δ/choice',
    'tokens routed Δ',
    'wall s',
  ];
  const rows = runs.map((run) => {
    const summary = summarizeRun(run);
    const lastQuarter = run.metrics.slice(Math.floor((run.metrics.length * 3) / 4));
    const reward =
      lastQuarter.reduce((total, row) => total + row.rewardMean, 0) / Math.max(1, lastQuarter.length);
    return [
      run.name,
      cell(summary.initialEvalAccuracy, 3),
      cell(summary.finalEvalAccuracy, 3),
      cell(reward, 3),
      cell(summary.meanKlFree, 0, true),
      cell(summary.meanKlReplay, 0, true),
      cell(summary.meanExtremeTokenFractionFree, 4),
      cell(summary.meanExtremeTokenFractionReplay, 4),
      cell(summary.meanRoutingDisagreement, 4),
      cell(summary.meanTokensWithRoutingDifference, 3),
      cell(run.wallSeconds ?? summary.rolloutSeconds + summary.trainSeconds, 1),
    ];
  });
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]!.length)),
  );
  const format = (row: readonly string[]) =>
    row
      .map((text, column) => (column === 0 ? text.padEnd(widths[column]!) : text.padStart(widths[column]!)))
      .join('  ');
  return [format(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(format)].join(
    '\n',
  );
}
