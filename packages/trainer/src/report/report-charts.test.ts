import { describe, expect, it } from 'vitest';
import { syntheticRun } from '../__fixtures__/synthetic-runs.js';
import type { RunRecord, StepMetrics } from '../metrics/step-metrics.js';
import { ABS_DELTA_BIN_EDGES } from '../run/mismatch-metrics.js';
import { renderSvg } from './render-svg.js';
import { type ChartSpec, reportCharts } from './report-charts.js';

type Row = Record<string, number | string>;

const arms = (steps = 12) =>
  ['free', 'R3'].flatMap((arm) =>
    [0, 1, 2].map((seed) => syntheticRun(`${arm}-s${seed}`, arm === 'R3', steps, 10 * seed + arm.length)),
  );

const chart = (runs: readonly RunRecord[], id: string) => {
  const found = reportCharts(runs).find((candidate) => candidate.id === id);
  if (found === undefined) throw new Error(`no chart ${id}`);
  return found;
};
const dataOf = (spec: ChartSpec): Row[] => (spec.data as { values: Row[] }).values;

/** Every object inside a spec (layers, facets, encodings). */
function walk(value: unknown, visit: (node: Record<string, unknown>) => void): void {
  if (Array.isArray(value)) for (const item of value) walk(item, visit);
  else if (typeof value === 'object' && value !== null) {
    visit(value as Record<string, unknown>);
    for (const child of Object.values(value)) walk(child, visit);
  }
}

/** The tick labels of the axis titled 'step' in a rendered SVG. */
function stepAxisLabels(svg: string): string[] {
  const axes = svg.split('aria-roledescription="axis"').slice(1);
  const axis = axes.find((part) => part.includes("aria-label=\"X-axis titled 'step'"));
  if (axis === undefined) throw new Error('no step axis');
  const labels = axis.split('role-axis-label')[1]!.split('role-axis-domain')[0]!;
  return [...labels.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((match) => match[1]!);
}

describe('seed bands', () => {
  const runs = arms();

  it('draws one mean line per arm with its min–max over seeds (reward, held-out accuracy, KL)', () => {
    for (const [id, series, read] of [
      ['reward', 'reward', (row: StepMetrics) => row.rewardMean],
      ['kl', 'free routing', (row: StepMetrics) => row.klFree],
      ['kl', 'replayed routing', (row: StepMetrics) => row.klReplay],
      ['accuracy', 'held-out eval', (row: StepMetrics) => row.evalAccuracy],
    ] as const) {
      const rows = dataOf(chart(runs, id).spec);
      expect(new Set(rows.map((row) => row.group))).toEqual(new Set(['free', 'R3']));
      for (const arm of ['free', 'R3']) {
        const seeds = runs.filter((run) => run.name.startsWith(`${arm}-`));
        for (const step of [4, 8, 12]) {
          const values = seeds.map((run) => read(run.metrics[step - 1]!)!);
          const row = rows.find((r) => r.group === arm && r.series === series && r.step === step)!;
          expect(row, `${id} ${arm} ${step}`).toBeDefined();
          expect(row.min).toBe(Math.min(...values));
          expect(row.max).toBe(Math.max(...values));
          expect(row.mean as number).toBeCloseTo(values.reduce((a, b) => a + b, 0) / 3, 14);
          expect(row.n).toBe(3);
        }
      }
    }
  });

  it('has a band layer for seeded arms and keeps one line per run without seeds', () => {
    const spec = chart(runs, 'reward').spec;
    const layers = spec.layer as { mark: { type: string }; transform?: unknown }[];
    expect(layers.map((layer) => layer.mark.type)).toEqual(['area', 'line', 'point']);
    expect(layers[0]!.transform).toEqual([{ filter: 'datum.n > 1' }]);
    const plain = [syntheticRun('grpo', false, 12, 1), syntheticRun('grpo-r3', true, 12, 2)];
    const rows = dataOf(chart(plain, 'reward').spec);
    expect(rows).toHaveLength(24);
    for (const row of rows) {
      const run = plain.find((candidate) => candidate.name === row.group)!;
      expect(row.mean).toBe(run.metrics[(row.step as number) - 1]!.rewardMean);
      expect(row.n).toBe(1);
    }
  });
});

describe('accuracy chart', () => {
  it('starts the held-out series at step 0 with the accuracy before RL', () => {
    const plain = [syntheticRun('a', false, 8, 1), syntheticRun('b', true, 8, 2)];
    const rows = dataOf(chart(plain, 'accuracy').spec).filter((row) => row.series === 'held-out eval');
    for (const run of plain) {
      const first = rows
        .filter((row) => row.group === run.name)
        .sort((x, y) => Number(x.step) - Number(y.step))[0];
      expect(first).toMatchObject({ step: 0, mean: run.initialEvalAccuracy });
    }
    const seeded = arms();
    const zero = dataOf(chart(seeded, 'accuracy').spec).find((row) => row.group === 'R3' && row.step === 0)!;
    const initials = seeded.filter((run) => run.name.startsWith('R3-')).map((r) => r.initialEvalAccuracy!);
    expect(zero).toMatchObject({ min: Math.min(...initials), max: Math.max(...initials), n: 3 });
    // Rollout accuracy has no step 0.
    expect(dataOf(chart(plain, 'accuracy').spec).some((r) => r.series === 'rollouts' && r.step === 0)).toBe(
      false,
    );
  });
});

describe('where the mismatch lives', () => {
  const runs = arms();

  it('plots KL on flipped and steady tokens, free and replayed, as the mean over seeds per arm', () => {
    const rows = dataOf(chart(runs, 'kl-flipped').spec);
    expect(new Set(rows.map((row) => `${row.routing}/${row.tokens}`))).toEqual(
      new Set(['free/flipped', 'free/steady', 'replayed/flipped', 'replayed/steady']),
    );
    const seeds = runs.filter((run) => run.name.startsWith('free-'));
    const expected = seeds.map((run) => run.metrics[6]!.klReplayFlipped!).reduce((a, b) => a + b, 0) / 3;
    const row = rows.find(
      (r) => r.group === 'free' && r.step === 7 && r.routing === 'replayed' && r.tokens === 'flipped',
    )!;
    expect(row.mean as number).toBeCloseTo(expected, 14);
  });

  it('plots the share of free-routing KL on flipped tokens next to the share of flipped tokens', () => {
    const rows = dataOf(chart(runs, 'kl-share-flipped').spec);
    expect(new Set(rows.map((row) => row.series))).toEqual(
      new Set(['share of free-routing KL', 'share of tokens']),
    );
  });

  it('leaves these charts out for runs that did not record the split', () => {
    const old = [syntheticRun('a', false, 5, 1, { mismatchDetail: false })];
    const ids = reportCharts(old).map((candidate) => candidate.id);
    for (const id of ['kl-flipped', 'kl-share-flipped', 'abs-delta-histogram', 'max-abs-delta']) {
      expect(ids).not.toContain(id);
    }
    expect(ids).toContain('kl-ratio');
  });
});

describe('multi-turn runs', () => {
  const agents = [0, 1].map((seed) =>
    syntheticRun(`R3-s${seed}`, true, 6, 5 + seed, { conversations: true }),
  );

  it('plot turns and tool calls per episode, tokens per turn and what the cache served, over seeds', () => {
    for (const [id, series, key] of [
      ['turns', 'model turns', 'turnsPerEpisode'],
      ['turns', 'tool calls', 'toolCallsPerEpisode'],
      ['tokens-per-turn', 'tokens per turn', 'tokensPerTurn'],
      ['cache-across-turns', 'observation share of the response', 'observationTokenShare'],
      ['routing-rows-reused', 'rows reused', 'routingRowsReused'],
    ] as const) {
      const rows = dataOf(chart(agents, id).spec);
      for (const step of [1, 6]) {
        const values = agents.map((run) => run.metrics[step - 1]![key]!);
        const row = rows.find((r) => r.series === series && r.step === step)!;
        expect(row, `${id} ${series} ${step}`).toBeDefined();
        expect(row.group).toBe('R3');
        expect(row.mean as number).toBeCloseTo((values[0]! + values[1]!) / 2, 12);
        expect(row.min).toBe(Math.min(...values));
      }
    }
  });

  it('are the only runs with these charts', () => {
    const ids = reportCharts(arms(4)).map((candidate) => candidate.id);
    for (const id of ['turns', 'tokens-per-turn', 'cache-across-turns', 'routing-rows-reused']) {
      expect(ids).not.toContain(id);
    }
  });
});

describe('|Δlogp| histogram', () => {
  it('pools the counts over steps and seeds per arm, as a share of all response tokens', () => {
    const runs = arms(6);
    const rows = dataOf(chart(runs, 'abs-delta-histogram').spec);
    const seeds = runs.filter((run) => run.name.startsWith('R3-'));
    const steps = seeds.flatMap((run) => run.metrics);
    const tokens = steps.flatMap((row) => row.absDeltaHistogramFree!).reduce((a, b) => a + b, 0);
    for (const [series, key] of [
      ['free routing', 'absDeltaHistogramFree'],
      ['free routing, flipped tokens', 'absDeltaHistogramFreeFlipped'],
      ['replayed routing', 'absDeltaHistogramReplay'],
    ] as const) {
      for (let bin = 0; bin < ABS_DELTA_BIN_EDGES.length; bin++) {
        const count = steps.reduce((sum, row) => sum + row[key]![bin]!, 0);
        const row = rows.find((r) => r.group === 'R3' && r.series === series && r.bin === bin)!;
        expect(row.count, `${series} bin ${bin}`).toBe(count);
        expect(row.share as number).toBeCloseTo(count / tokens, 14);
      }
    }
    // x is each bin's lower edge on a log scale: the [0, 1e-6) bin is drawn from 1e-7.
    const free = rows.filter((r) => r.group === 'R3' && r.series === 'free routing');
    expect(free.map((row) => row.x)).toEqual([1e-7, ...ABS_DELTA_BIN_EDGES.slice(1), 100]);
  });
});

describe('KL ratio distribution', () => {
  it('shows every step of every seed per arm, not only a mean', () => {
    const runs = arms();
    const spec = chart(runs, 'kl-ratio').spec;
    const layers = spec.layer as { mark: { type: string }; data: { values: Row[] } }[];
    expect(layers.map((layer) => layer.mark.type)).toEqual(['boxplot', 'point', 'rule']);
    const rows = layers[0]!.data.values;
    expect(rows.filter((row) => row.group === 'free')).toHaveLength(36);
    const run = runs[4]!;
    const row = rows.find((r) => r.run === run.name && r.step === 9)!;
    expect(row.ratio as number).toBeCloseTo(run.metrics[8]!.klFree / run.metrics[8]!.klReplay, 14);
  });
});

describe('issue 21', () => {
  it('gives an all-zero routing heatmap a colour domain from 0 to something', () => {
    const zero = syntheticRun('fp32', false, 4, 1);
    const flat: RunRecord = {
      ...zero,
      name: 'fp32-flat',
      metrics: zero.metrics.map((row) => ({ ...row, routingDisagreement: [0, 0, 0] })),
    };
    const domainOf = (runs: readonly RunRecord[]) => {
      let domain: unknown;
      walk(chart(runs, 'routing-disagreement').spec, (node) => {
        if (node.field === 'fraction') domain = (node.scale as { domain: unknown }).domain;
      });
      return domain as [number, number];
    };
    const [low, high] = domainOf([flat]);
    expect(low).toBe(0);
    expect(high).toBeGreaterThan(0);
    const largest = Math.max(...zero.metrics.flatMap((row) => row.routingDisagreement));
    expect(domainOf([zero, flat])).toEqual([0, largest]);
  });

  it('puts only whole steps on step axes', async () => {
    let stepAxes = 0;
    for (const { spec } of reportCharts(arms())) {
      walk(spec, (node) => {
        if (node.field === 'step' && node.type === 'quantitative') {
          stepAxes++;
          expect(node.axis).toMatchObject({ tickMinStep: 1 });
        }
      });
    }
    expect(stepAxes).toBeGreaterThan(10);
    // Two steps is where a linear axis would otherwise tick at 1.2, 1.4, …
    const short = [syntheticRun('a', false, 2, 1)];
    const labels = stepAxisLabels(await renderSvg(chart(short, 'reward').spec));
    expect(labels).toEqual(['1', '2']);
  });

  it('draws free and replayed series with their own dash patterns and a legend that shows them', async () => {
    const runs = [syntheticRun('a', false, 5, 1)];
    for (const id of ['kl', 'extreme-tokens', 'max-abs-delta']) {
      const spec = chart(runs, id).spec;
      let dash: { domain: string[]; range: number[][] } | undefined;
      walk(spec, (node) => {
        if (node.field === 'series' && typeof node.scale === 'object' && node.legend !== undefined) {
          dash = node.scale as typeof dash;
        }
      });
      expect(dash?.domain, id).toEqual(['free routing', 'replayed routing']);
      expect(dash!.range[0]).not.toEqual(dash!.range[1]);
      // A line mark with `point: true` would draw the dash legend as circles; points are a layer of their own.
      walk(spec, (node) => {
        if (node.type === 'line') expect(node.point, id).toBeUndefined();
      });
    }
    const svg = await renderSvg(chart(runs, 'kl').spec);
    const legend = svg.split("Symbol legend titled 'trainer routing'")[1]!;
    expect(legend).toContain('stroke-dasharray="1,0"');
    expect(legend).toContain('stroke-dasharray="6,4"');
  });
});

describe('every chart renders', () => {
  it('for arms over seeds, plain runs, multi-turn runs and runs recorded before the mismatch split', async () => {
    const runs = [
      ...arms(4),
      syntheticRun('agent', true, 4, 7, { conversations: true }),
      syntheticRun('plain', true, 4, 9),
      syntheticRun('old', false, 4, 8, { mismatchDetail: false }),
    ];
    for (const { id, spec } of reportCharts(runs)) {
      const svg = await renderSvg(spec);
      expect(svg, id).toMatch(/^<svg /);
    }
  });
});
