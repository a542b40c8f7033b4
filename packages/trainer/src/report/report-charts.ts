import type { RunRecord, StepMetrics } from '../metrics/step-metrics.js';

/** A Vega-Lite specification (kept loose: the report only builds and renders them). */
export type ChartSpec = Record<string, unknown>;

export interface ReportChart {
  readonly id: string;
  readonly title: string;
  readonly spec: ChartSpec;
}

const WIDTH = 420;
const HEIGHT = 220;

type NumericKey = {
  [K in keyof StepMetrics]-?: StepMetrics[K] extends number | undefined ? K : never;
}[keyof StepMetrics];

/** One line per run (and per series), step on x. */
function lineChart(
  id: string,
  title: string,
  runs: readonly RunRecord[],
  series: readonly { readonly key: NumericKey; readonly label: string }[],
  options: { readonly logScale?: boolean; readonly yTitle?: string } = {},
): ReportChart {
  const values: Record<string, unknown>[] = [];
  for (const run of runs) {
    for (const row of run.metrics) {
      for (const { key, label } of series) {
        const value = row[key];
        if (value === undefined || !Number.isFinite(value)) continue;
        if (options.logScale === true && value <= 0) continue;
        values.push({ step: row.step, value, run: run.name, series: label });
      }
    }
  }
  const multiSeries = series.length > 1;
  return {
    id,
    title,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title,
      width: WIDTH,
      height: HEIGHT,
      data: { values },
      mark: { type: 'line', point: values.length < 60 },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'step' },
        y: {
          field: 'value',
          type: 'quantitative',
          title: options.yTitle ?? title,
          ...(options.logScale === true ? { scale: { type: 'log' } } : {}),
        },
        color: { field: 'run', type: 'nominal', title: 'run' },
        ...(multiSeries ? { strokeDash: { field: 'series', type: 'nominal', title: 'series' } } : {}),
      },
    },
  };
}

/** Routing disagreement per MoE layer over steps, one heatmap per run. */
function routingHeatmap(runs: readonly RunRecord[]): ReportChart {
  const values: Record<string, unknown>[] = [];
  for (const run of runs) {
    for (const row of run.metrics) {
      row.routingDisagreement.forEach((fraction, layer) => {
        values.push({ step: row.step, layer, fraction, run: run.name });
      });
    }
  }
  return {
    id: 'routing-disagreement',
    title: 'Engine vs trainer routing disagreement per MoE layer (free routing)',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'Routing disagreement per MoE layer',
      data: { values },
      facet: { row: { field: 'run', type: 'nominal', title: null } },
      spec: {
        width: WIDTH,
        height: 60,
        mark: 'rect',
        encoding: {
          x: { field: 'step', type: 'ordinal', title: 'step', axis: { labelOverlap: true } },
          y: { field: 'layer', type: 'ordinal', title: 'MoE layer' },
          color: {
            field: 'fraction',
            type: 'quantitative',
            title: 'disagreement',
            scale: { scheme: 'orangered' },
          },
        },
      },
    },
  };
}

/** Every chart of the report, in reading order. */
export function reportCharts(runs: readonly RunRecord[]): ReportChart[] {
  return [
    lineChart('reward', 'Reward (mean over samples)', runs, [{ key: 'rewardMean', label: 'reward' }]),
    lineChart('accuracy', 'Accuracy', runs, [
      { key: 'accuracy', label: 'rollouts' },
      { key: 'evalAccuracy', label: 'held-out eval' },
    ]),
    lineChart(
      'kl',
      'Trainer–engine KL (k3, per token)',
      runs,
      [
        { key: 'klFree', label: 'free routing' },
        { key: 'klReplay', label: 'replayed routing' },
      ],
      { logScale: true, yTitle: 'KL (log scale)' },
    ),
    lineChart('extreme-tokens', 'Tokens with |Δlogp| > ln 2', runs, [
      { key: 'extremeTokenFractionFree', label: 'free routing' },
      { key: 'extremeTokenFractionReplay', label: 'replayed routing' },
    ]),
    routingHeatmap(runs),
    lineChart('clip-fraction', 'Clip fraction', runs, [{ key: 'clipFraction', label: 'clip fraction' }]),
    lineChart('grad-norm', 'Gradient norm (before clipping)', runs, [
      { key: 'gradNorm', label: 'grad norm' },
    ]),
    lineChart('throughput', 'Throughput (tokens/s)', runs, [
      { key: 'rolloutTokensPerSecond', label: 'rollout' },
      { key: 'trainTokensPerSecond', label: 'training' },
    ]),
  ];
}
