import { join } from 'node:path';
import type { RunConfig } from '../config/run-config-schema.js';
import type { RunRecord } from '../metrics/step-metrics.js';
import { writeHtmlReport } from '../report/html-report.js';
import type { RunEvents } from './run-events.js';
import { trainRun } from './train-run.js';

export interface CompareRunsOptions {
  readonly configs: readonly RunConfig[];
  /** Each run goes to `<directory>/<name>`; the report to `<directory>/report.html`. */
  readonly directory: string;
  readonly eventsFor?: (config: RunConfig) => RunEvents & { stop?(): void };
  readonly signal?: AbortSignal;
  readonly title?: string;
  /** Replace runs already in the directory (without it, a directory holding one is an error). */
  readonly force?: boolean;
}

export interface CompareRunsResult {
  readonly runs: readonly (RunRecord & { readonly wallSeconds: number })[];
  readonly reportPath: string;
}

/** Runs several configs one after another (same seeds and tasks) and writes one report over all of them. */
export async function compareRuns(options: CompareRunsOptions): Promise<CompareRunsResult> {
  const names = new Set<string>();
  const runs: (RunRecord & { wallSeconds: number })[] = [];
  for (const config of options.configs) {
    let name = config.name;
    for (let suffix = 2; names.has(name); suffix++) name = `${config.name}-${suffix}`;
    names.add(name);
    const events = options.eventsFor?.(config);
    const start = performance.now();
    try {
      const result = await trainRun({
        config: { ...config, name },
        directory: join(options.directory, name),
        ...(events === undefined ? {} : { events }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        ...(options.force === undefined ? {} : { force: options.force }),
      });
      runs.push({
        name,
        config: { ...config, name },
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
  const reportPath = join(options.directory, 'report.html');
  await writeHtmlReport(
    reportPath,
    runs,
    options.title ?? `moerl compare: ${runs.map((run) => run.name).join(' vs ')}`,
  );
  return { runs, reportPath };
}
