import type { RunRecord, StepMetrics } from '../metrics/step-metrics.js';
import { ABS_DELTA_BIN_EDGES } from '../run/mismatch-metrics.js';
import {
  groupRunsBySeed,
  klRatios,
  pooledHistogram,
  type RunGroup,
  type SeedSeries,
  seedBands,
} from './seed-groups.js';

/** A Vega-Lite specification (kept loose: the report only builds and renders them). */
export type ChartSpec = Record<string, unknown>;

export interface ReportChart {
  readonly id: string;
  readonly title: string;
  readonly spec: ChartSpec;
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const WIDTH = 420;
const HEIGHT = 220;
const PANEL_WIDTH = 220;
const PANEL_HEIGHT = 140;

/** Steps are whole numbers: no fractional ticks, integer labels. */
export const STEP_AXIS = { tickMinStep: 1, format: 'd' } as const;
const stepX = { field: 'step', type: 'quantitative', title: 'step', axis: STEP_AXIS } as const;

/** Dash patterns for series, so that e.g. free and replayed lines differ beyond their legend entry. */
const DASHES: readonly (readonly number[])[] = [
  [1, 0],
  [6, 4],
  [2, 3],
  [10, 3, 2, 3],
];
/** A legend whose symbols are short strokes, so the dash pattern shows. */
const DASH_LEGEND = { symbolType: 'stroke', symbolSize: 500, symbolStrokeWidth: 2, labelLimit: 240 } as const;

function dashEncoding(field: string, labels: readonly string[], title: string) {
  return {
    field,
    type: 'nominal',
    title,
    scale: { domain: labels, range: labels.map((_, index) => DASHES[index % DASHES.length]) },
    legend: DASH_LEGEND,
  };
}

type Metric = (row: StepMetrics) => number | undefined;
const metric =
  (key: keyof StepMetrics): Metric =>
  (row) => {
    const value = row[key];
    return typeof value === 'number' ? value : undefined;
  };

const seeded = (groups: readonly RunGroup[]) => groups.some((group) => group.runs.length > 1);

const SEEDS_SUBTITLE = 'arms over seeds: line = mean, band = min–max';

/**
 * Colour by run or arm, in the order the runs came. Every layer carries the same legend (they merge into
 * one); opaque symbols, or the band layer's translucency would show in it.
 */
function groupColor(groups: readonly RunGroup[]) {
  return {
    field: 'group',
    type: 'nominal',
    title: seeded(groups) ? 'run / arm' : 'run',
    scale: { domain: groups.map((group) => group.label) },
    legend: { symbolType: 'circle', symbolOpacity: 1, labelLimit: 240 },
  };
}

/**
 * Points of a line chart as a layer of their own (a line with `point: true` would turn the legend of its
 * dash patterns into empty circles), drawn when there are few enough to help: a one-step run is then still
 * visible.
 */
function pointLayer(y: Record<string, unknown>, color: Record<string, unknown>) {
  return {
    mark: { type: 'point', filled: true, size: 24 },
    encoding: { x: stepX, y, color },
  };
}

/**
 * One line per group and series, step on x: a single run's values, or for an arm over seeds the mean with
 * a min–max band.
 */
function bandChart(
  id: string,
  title: string,
  groups: readonly RunGroup[],
  series: readonly SeedSeries[],
  options: {
    readonly logScale?: boolean;
    readonly yTitle?: string;
    readonly seriesTitle?: string;
    readonly yDomain?: readonly [number, number];
  } = {},
): ReportChart {
  const values = seedBands(groups, series, { positiveOnly: options.logScale === true });
  const multiSeries = series.length > 1;
  const y = {
    type: 'quantitative',
    title: options.yTitle ?? title,
    scale: {
      ...(options.logScale === true ? { type: 'log' } : {}),
      ...(options.yDomain === undefined ? {} : { domain: options.yDomain }),
    },
  };
  return {
    id,
    title,
    spec: {
      $schema: SCHEMA,
      title: seeded(groups) ? { text: title, subtitle: SEEDS_SUBTITLE } : title,
      width: WIDTH,
      height: HEIGHT,
      data: { values },
      layer: [
        {
          transform: [{ filter: 'datum.n > 1' }],
          mark: { type: 'area', opacity: 0.18 },
          encoding: {
            x: stepX,
            y: { ...y, field: 'min' },
            y2: { field: 'max' },
            color: groupColor(groups),
            detail: { field: 'series', type: 'nominal' },
          },
        },
        {
          mark: { type: 'line' },
          encoding: {
            x: stepX,
            y: { ...y, field: 'mean' },
            color: groupColor(groups),
            ...(multiSeries
              ? {
                  strokeDash: dashEncoding(
                    'series',
                    series.map((line) => line.label),
                    options.seriesTitle ?? 'series',
                  ),
                }
              : {}),
            tooltip: [
              { field: 'group', title: 'run' },
              { field: 'series' },
              { field: 'step' },
              { field: 'mean', format: '.3~g' },
              { field: 'min', format: '.3~g' },
              { field: 'max', format: '.3~g' },
              { field: 'n', title: 'seeds' },
            ],
          },
        },
        ...(values.length < 60 ? [pointLayer({ ...y, field: 'mean' }, groupColor(groups))] : []),
      ],
    },
  };
}

/** Routing disagreement per MoE layer over steps, one heatmap per run. */
function routingHeatmap(runs: readonly RunRecord[]): ReportChart {
  const values: Record<string, unknown>[] = [];
  let largest = 0;
  for (const run of runs) {
    for (const row of run.metrics) {
      row.routingDisagreement.forEach((fraction, layer) => {
        values.push({ step: row.step, layer, fraction, run: run.name });
        if (Number.isFinite(fraction)) largest = Math.max(largest, fraction);
      });
    }
  }
  // An all-zero run (replay, or an fp32 engine) still gets a scale from 0 to something, so its cells show
  // the colour of "no disagreement" instead of an empty [0, 0] domain.
  const domain = [0, largest > 0 ? largest : 0.1];
  return {
    id: 'routing-disagreement',
    title: 'Engine vs trainer routing disagreement per MoE layer (free routing)',
    spec: {
      $schema: SCHEMA,
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
            scale: { scheme: { name: 'orangered', extent: [0.1, 1] }, domain },
          },
        },
      },
    },
  };
}

const hasMetric = (runs: readonly RunRecord[], key: keyof StepMetrics) =>
  runs.some((run) =>
    run.metrics.some((row) => {
      const value = row[key];
      return Array.isArray(value) || (typeof value === 'number' && Number.isFinite(value));
    }),
  );

const FLIP_SERIES: readonly SeedSeries[] = [
  { label: 'free, flipped', value: metric('klFreeFlipped'), fields: { routing: 'free', tokens: 'flipped' } },
  { label: 'free, steady', value: metric('klFreeSteady'), fields: { routing: 'free', tokens: 'steady' } },
  {
    label: 'replayed, flipped',
    value: metric('klReplayFlipped'),
    fields: { routing: 'replayed', tokens: 'flipped' },
  },
  {
    label: 'replayed, steady',
    value: metric('klReplaySteady'),
    fields: { routing: 'replayed', tokens: 'steady' },
  },
];

/** Facets one panel per group, three to a row. */
const facetByGroup = (groups: readonly RunGroup[]) => ({
  field: 'group',
  type: 'nominal',
  title: null,
  sort: groups.map((group) => group.label),
});

/**
 * Where the mismatch lives: per step, the k3 KL on tokens whose routing flipped (trainer free vs engine)
 * and on the others, with the trainer routing freely and replaying; one panel per run or arm (mean over
 * seeds).
 */
function klByFlipChart(groups: readonly RunGroup[]): ReportChart {
  const values = seedBands(groups, FLIP_SERIES, { positiveOnly: true });
  const title = 'Where the mismatch lives: KL on tokens whose routing flipped vs the rest';
  const y = { field: 'mean', type: 'quantitative', title: 'k3 KL (log scale)', scale: { type: 'log' } };
  const tokens = {
    field: 'tokens',
    type: 'nominal',
    title: 'tokens',
    scale: { domain: ['flipped', 'steady'], range: ['#d62728', '#1f77b4'] },
  };
  return {
    id: 'kl-flipped',
    title,
    spec: {
      $schema: SCHEMA,
      title: {
        text: title,
        subtitle: 'mean over seeds per run or arm; flipped: routing differs in ≥ 1 layer',
      },
      data: { values },
      facet: facetByGroup(groups),
      columns: 3,
      spec: {
        width: PANEL_WIDTH,
        height: PANEL_HEIGHT,
        layer: [
          {
            mark: { type: 'line' },
            encoding: {
              x: stepX,
              y,
              color: tokens,
              strokeDash: dashEncoding('routing', ['free', 'replayed'], 'trainer routing'),
              tooltip: [
                { field: 'group', title: 'run' },
                { field: 'series' },
                { field: 'step' },
                { field: 'mean', title: 'KL', format: '.3~g' },
                { field: 'n', title: 'seeds' },
              ],
            },
          },
          ...(values.length < 120 ? [pointLayer(y, tokens)] : []),
        ],
      },
    },
  };
}

/** Pooled |Δlogp| distribution on a log-x scale: one step line per histogram, one panel per group. */
function absDeltaHistogramChart(groups: readonly RunGroup[]): ReportChart {
  const edges = ABS_DELTA_BIN_EDGES;
  // Bin 0 is [0, 1e-6): drawn one decade wide below 1e-6; the last bin [10, ∞) one decade wide above 10.
  const lower = (bin: number) => (bin === 0 ? edges[1]! / 10 : edges[bin]!);
  const upper = (bin: number) => (bin + 1 < edges.length ? edges[bin + 1]! : edges[bin]! * 10);
  const series = [
    { key: 'absDeltaHistogramFree', label: 'free routing' },
    { key: 'absDeltaHistogramFreeFlipped', label: 'free routing, flipped tokens' },
    { key: 'absDeltaHistogramReplay', label: 'replayed routing' },
  ] as const;
  const values: Record<string, unknown>[] = [];
  for (const group of groups) {
    const pooled = series.map(({ key }) => pooledHistogram(group.runs, key));
    const tokens = (pooled[0] ?? pooled[2] ?? []).reduce((sum, count) => sum + count, 0);
    if (tokens === 0) continue;
    series.forEach(({ label }, index) => {
      const counts = pooled[index];
      if (counts === undefined) return;
      counts.forEach((count, bin) => {
        values.push({ group: group.label, series: label, x: lower(bin), bin, count, share: count / tokens });
      });
      const last = counts.length - 1;
      values.push({
        group: group.label,
        series: label,
        x: upper(last),
        bin: last,
        count: counts[last],
        share: counts[last]! / tokens,
      });
    });
  }
  const title = '|Δlogp| trainer vs engine, pooled over steps (and seeds)';
  return {
    id: 'abs-delta-histogram',
    title,
    spec: {
      $schema: SCHEMA,
      title: { text: title, subtitle: 'first bin: |Δ| < 1e-6 (exact matches included); last: ≥ 10' },
      data: { values },
      facet: facetByGroup(groups),
      columns: 3,
      spec: {
        width: PANEL_WIDTH,
        height: PANEL_HEIGHT,
        mark: { type: 'line', interpolate: 'step-after' },
        encoding: {
          x: {
            field: 'x',
            type: 'quantitative',
            title: '|Δlogp| (log scale)',
            scale: { type: 'log', domain: [lower(0), upper(edges.length - 1)] },
            axis: { format: '.0e', values: [...edges.slice(1), upper(edges.length - 1)] },
          },
          y: { field: 'share', type: 'quantitative', title: 'share of response tokens' },
          color: {
            field: 'series',
            type: 'nominal',
            title: 'histogram',
            scale: {
              domain: series.map(({ label }) => label),
              range: ['#d62728', '#ff7f0e', '#1f77b4'],
            },
          },
          strokeDash: dashEncoding(
            'series',
            series.map(({ label }) => label),
            'histogram',
          ),
          tooltip: [
            { field: 'group', title: 'run' },
            { field: 'series' },
            { field: 'bin' },
            { field: 'count', title: 'tokens' },
            { field: 'share', format: '.3~g' },
          ],
        },
      },
    },
  };
}

/** The per-step ratio KL free / KL replay as a distribution per run or arm: box plot plus every step. */
function klRatioChart(groups: readonly RunGroup[]): ReportChart {
  const values = groups.flatMap((group) =>
    klRatios(group.runs).map(({ run, step, ratio }, index) => ({
      group: group.label,
      run,
      step,
      ratio,
      // A fixed, evenly spread horizontal offset, so the points of one arm do not sit on one line.
      jitter: (index * 0.6180339887) % 1,
    })),
  );
  const title = 'KL free / KL replay per step';
  const y = { field: 'ratio', type: 'quantitative', title: 'ratio (log scale)', scale: { type: 'log' } };
  const x = {
    field: 'group',
    type: 'nominal',
    title: seeded(groups) ? 'run / arm' : 'run',
    sort: groups.map((group) => group.label),
  };
  return {
    id: 'kl-ratio',
    title,
    spec: {
      $schema: SCHEMA,
      title: { text: title, subtitle: 'box: quartiles, whiskers: min–max; dots: every step (of every seed)' },
      width: Math.max(WIDTH / 2, 70 * groups.length),
      height: HEIGHT,
      layer: [
        {
          data: { values },
          mark: { type: 'boxplot', extent: 'min-max', opacity: 0.5 },
          encoding: { x, y, color: { field: 'group', type: 'nominal', legend: null } },
        },
        {
          data: { values },
          mark: { type: 'point', filled: true, size: 14, opacity: 0.6, color: '#333' },
          encoding: {
            x,
            xOffset: { field: 'jitter', type: 'quantitative', scale: { domain: [-0.5, 1.5] } },
            y,
            tooltip: [{ field: 'run' }, { field: 'step' }, { field: 'ratio', format: '.3~g' }],
          },
        },
        {
          data: { values: [{ ratio: 1 }] },
          mark: { type: 'rule', color: '#888', strokeDash: [4, 4] },
          encoding: { y: { field: 'ratio', type: 'quantitative' } },
        },
      ],
    },
  };
}

const ROUTING_SERIES_TITLE = 'trainer routing';

/** Multi-turn runs: how conversations unfold, and what the prefix cache serves across their turns. */
function conversationCharts(groups: readonly RunGroup[]): ReportChart[] {
  return [
    bandChart(
      'turns',
      'Turns and tool calls per episode',
      groups,
      [
        { label: 'model turns', value: metric('turnsPerEpisode') },
        { label: 'tool calls', value: metric('toolCallsPerEpisode') },
      ],
      { yTitle: 'per episode', seriesTitle: 'count' },
    ),
    bandChart('tokens-per-turn', 'Sampled tokens per model turn', groups, [
      { label: 'tokens per turn', value: metric('tokensPerTurn') },
    ]),
    bandChart(
      'cache-across-turns',
      'Prefix cache across turns',
      groups,
      [
        { label: 'prompt positions served by the cache', value: metric('prefixCacheHitRate') },
        { label: 'observation share of the response', value: metric('observationTokenShare') },
      ],
      { yTitle: 'share', yDomain: [0, 1], seriesTitle: 'share' },
    ),
    bandChart('routing-rows-reused', 'Routing rows the cache served per step', groups, [
      { label: 'rows reused', value: metric('routingRowsReused') },
    ]),
  ];
}

/** Every chart of the report, in reading order. Charts for metrics no run has are left out. */
export function reportCharts(runs: readonly RunRecord[]): ReportChart[] {
  const groups = groupRunsBySeed(runs);
  const charts = [
    bandChart('reward', 'Reward (mean over samples)', groups, [
      { label: 'reward', value: metric('rewardMean') },
    ]),
    bandChart(
      'accuracy',
      'Accuracy (step 0: held-out, before RL)',
      groups,
      [
        { label: 'held-out eval', value: metric('evalAccuracy'), initial: (run) => run.initialEvalAccuracy },
        {
          label: 'warm-start problems',
          value: metric('seenEvalAccuracy'),
          initial: (run) => run.initialSeenEvalAccuracy,
        },
        { label: 'rollouts', value: metric('accuracy') },
      ],
      { yTitle: 'accuracy' },
    ),
    bandChart(
      'kl',
      'Trainer–engine KL (k3, per token)',
      groups,
      [
        { label: 'free routing', value: metric('klFree') },
        { label: 'replayed routing', value: metric('klReplay') },
      ],
      { logScale: true, yTitle: 'KL (log scale)', seriesTitle: ROUTING_SERIES_TITLE },
    ),
    klRatioChart(groups),
  ];
  if (hasMetric(runs, 'klFreeFlipped') || hasMetric(runs, 'klReplayFlipped')) {
    charts.push(klByFlipChart(groups));
  }
  if (hasMetric(runs, 'klFreeShareOnFlippedTokens')) {
    charts.push(
      bandChart(
        'kl-share-flipped',
        'Share of the free-routing KL on tokens whose routing flipped',
        groups,
        [
          { label: 'share of free-routing KL', value: metric('klFreeShareOnFlippedTokens') },
          { label: 'share of tokens', value: metric('tokensWithRoutingDifference') },
        ],
        { yTitle: 'share', yDomain: [0, 1] },
      ),
    );
  }
  if (
    hasMetric(runs, 'absDeltaHistogramFree') ||
    hasMetric(runs, 'absDeltaHistogramReplay') ||
    hasMetric(runs, 'absDeltaHistogramFreeFlipped')
  ) {
    charts.push(absDeltaHistogramChart(groups));
  }
  if (hasMetric(runs, 'maxAbsDeltaFree') || hasMetric(runs, 'maxAbsDeltaReplay')) {
    charts.push(
      bandChart(
        'max-abs-delta',
        'Largest |Δlogp| of the step',
        groups,
        [
          { label: 'free routing', value: metric('maxAbsDeltaFree') },
          { label: 'replayed routing', value: metric('maxAbsDeltaReplay') },
        ],
        { logScale: true, yTitle: 'max |Δlogp| (log scale)', seriesTitle: ROUTING_SERIES_TITLE },
      ),
    );
  }
  if (hasMetric(runs, 'turnsPerEpisode')) charts.push(...conversationCharts(groups));
  charts.push(
    bandChart(
      'extreme-tokens',
      'Tokens with |Δlogp| > ln 2',
      groups,
      [
        { label: 'free routing', value: metric('extremeTokenFractionFree') },
        { label: 'replayed routing', value: metric('extremeTokenFractionReplay') },
      ],
      { yTitle: 'share of tokens', seriesTitle: ROUTING_SERIES_TITLE },
    ),
    routingHeatmap(runs),
    bandChart('clip-fraction', 'Clip fraction', groups, [
      { label: 'clip fraction', value: metric('clipFraction') },
    ]),
    bandChart('grad-norm', 'Gradient norm (before clipping)', groups, [
      { label: 'grad norm', value: metric('gradNorm') },
    ]),
    bandChart('throughput', 'Throughput (tokens/s)', groups, [
      { label: 'rollout', value: metric('rolloutTokensPerSecond') },
      { label: 'training', value: metric('trainTokensPerSecond') },
    ]),
  );
  return charts;
}
