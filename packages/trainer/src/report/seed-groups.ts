import type { RunRecord, StepMetrics } from '../metrics/step-metrics.js';

/** Runs the report draws as one: the seeds of one study arm, or a single run. */
export interface RunGroup {
  /** The arm (`free` for `free-s0`, `free-s1`, …) when the group has several seeds, else the run's name. */
  readonly label: string;
  readonly runs: readonly RunRecord[];
}

/** `<arm>-s<seed>`, the names `moerl study` gives its runs. */
const SEEDED_NAME = /^(.+)-s(\d+)$/;

type Plain = Record<string, unknown>;
const isPlain = (value: unknown): value is Plain =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The config as a canonical string, keys sorted, without the name and the seed. */
function configKey(config: Plain): string {
  const canonical = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(canonical)
      : isPlain(value)
        ? Object.fromEntries(
            Object.keys(value)
              .sort()
              .map((key) => [key, canonical(value[key])]),
          )
        : value;
  const { name: _name, seed: _seed, ...rest } = config;
  return JSON.stringify(canonical(rest));
}

function commonPrefixLabel(names: readonly string[]): string {
  let prefix = names[0] ?? '';
  for (const name of names) while (!name.startsWith(prefix)) prefix = prefix.slice(0, -1);
  return prefix.replace(/[^A-Za-z0-9]+$/, '');
}

/**
 * Groups runs over seeds: runs named `<arm>-s<seed>` by arm, other runs whose config has a numeric `seed`
 * by their config minus name and seed. Runs without a seed stay alone. Groups keep the order of their
 * first run; a group of one is labelled with its run's name.
 */
export function groupRunsBySeed(runs: readonly RunRecord[]): RunGroup[] {
  const groups = new Map<string, { arm: string | undefined; runs: RunRecord[] }>();
  runs.forEach((run, index) => {
    const match = SEEDED_NAME.exec(run.name);
    const config = isPlain(run.config) ? run.config : undefined;
    const key =
      match !== null
        ? `arm:${match[1]}`
        : config !== undefined && typeof config.seed === 'number'
          ? `config:${configKey(config)}`
          : `run:${index}`;
    const group = groups.get(key) ?? { arm: match?.[1], runs: [] };
    group.runs.push(run);
    groups.set(key, group);
  });
  const used = new Set<string>();
  return [...groups.values()].map((group) => {
    let label =
      group.runs.length === 1
        ? group.runs[0]!.name
        : (group.arm ?? commonPrefixLabel(group.runs.map((run) => run.name)));
    if (label === '') label = group.runs[0]!.name;
    const base = label;
    for (let copy = 2; used.has(label); copy++) label = `${base} (${copy})`;
    used.add(label);
    return { label, runs: group.runs };
  });
}

/** One series drawn over seeds: how to read it from a step, and optionally its value before step 1. */
export interface SeedSeries {
  readonly label: string;
  readonly value: (row: StepMetrics) => number | undefined;
  /** The value at step 0 (before RL), e.g. the held-out accuracy of the warm-started policy. */
  readonly initial?: (run: RunRecord) => number | undefined;
  /** Extra fields copied onto every row of this series (e.g. to encode it on two channels). */
  readonly fields?: Readonly<Record<string, string>>;
}

/** Mean, min and max over the seeds of a group that have a value at this step. */
export interface BandRow {
  readonly step: number;
  readonly group: string;
  readonly series: string;
  readonly mean: number;
  readonly min: number;
  readonly max: number;
  /** How many seeds had a value at this step. */
  readonly n: number;
  readonly [field: string]: string | number;
}

/**
 * Per group, series and step: mean, min and max over the group's runs. Non-finite values are left out, and
 * values ≤ 0 too when `positiveOnly` (for log scales).
 */
export function seedBands(
  groups: readonly RunGroup[],
  series: readonly SeedSeries[],
  options: { readonly positiveOnly?: boolean } = {},
): BandRow[] {
  const keep = (value: number | undefined): value is number =>
    value !== undefined && Number.isFinite(value) && (options.positiveOnly !== true || value > 0);
  const rows: BandRow[] = [];
  for (const group of groups) {
    for (const line of series) {
      const byStep = new Map<number, number[]>();
      const add = (step: number, value: number | undefined) => {
        if (!keep(value)) return;
        const values = byStep.get(step) ?? [];
        values.push(value);
        byStep.set(step, values);
      };
      for (const run of group.runs) {
        if (line.initial !== undefined) add(0, line.initial(run));
        for (const row of run.metrics) add(row.step, line.value(row));
      }
      for (const step of [...byStep.keys()].sort((a, b) => a - b)) {
        const values = byStep.get(step)!;
        rows.push({
          ...line.fields,
          step,
          group: group.label,
          series: line.label,
          mean: values.reduce((sum, value) => sum + value, 0) / values.length,
          min: Math.min(...values),
          max: Math.max(...values),
          n: values.length,
        });
      }
    }
  }
  return rows;
}

type HistogramKey = 'absDeltaHistogramFree' | 'absDeltaHistogramFreeFlipped' | 'absDeltaHistogramReplay';

/** Token counts per bin summed over every step of every run (undefined when no step has the histogram). */
export function pooledHistogram(runs: readonly RunRecord[], key: HistogramKey): number[] | undefined {
  let pooled: number[] | undefined;
  for (const run of runs) {
    for (const row of run.metrics) {
      const counts = row[key];
      if (counts === undefined) continue;
      pooled ??= [];
      counts.forEach((count, bin) => {
        if (Number.isFinite(count)) pooled![bin] = (pooled![bin] ?? 0) + count;
      });
    }
  }
  return pooled === undefined ? undefined : Array.from(pooled, (count) => count ?? 0);
}

/** Every step's KL free / KL replay of every run of the group (finite, positive ratios only). */
export function klRatios(runs: readonly RunRecord[]): { run: string; step: number; ratio: number }[] {
  const ratios: { run: string; step: number; ratio: number }[] = [];
  for (const run of runs) {
    for (const row of run.metrics) {
      const ratio = row.klFree / row.klReplay;
      if (Number.isFinite(ratio) && ratio > 0) ratios.push({ run: run.name, step: row.step, ratio });
    }
  }
  return ratios;
}
