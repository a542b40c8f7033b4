import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { syntheticRun } from '../__fixtures__/synthetic-runs.js';
import { renderHtmlReport, writeHtmlReport } from './html-report.js';
import { reportCharts } from './report-charts.js';
import { summarizeRun } from './run-summary.js';

const runs = [syntheticRun('grpo', false, 12, 1), syntheticRun('grpo-r3', true, 12, 2)];

describe('run summary', () => {
  it('averages what the table shows, from the metrics rows', () => {
    const run = runs[0]!;
    const summary = summarizeRun(run);
    const rows = run.metrics;
    let klSum = 0;
    for (const row of rows) klSum += row.klFree;
    expect(summary.meanKlFree).toBeCloseTo(klSum / rows.length, 12);
    expect(summary.finalEvalAccuracy).toBe(rows[11]!.evalAccuracy);
    // Last quarter of 12 steps = steps 10, 11, 12.
    expect(summary.finalAccuracy).toBeCloseTo(
      (rows[9]!.accuracy + rows[10]!.accuracy + rows[11]!.accuracy) / 3,
      12,
    );
    const layerMeans = rows.map((row) => row.routingDisagreement.reduce((a, b) => a + b, 0) / 3);
    expect(summary.meanRoutingDisagreement).toBeCloseTo(
      layerMeans.reduce((a, b) => a + b, 0) / rows.length,
      12,
    );
    expect(summary.trainSeconds).toBeCloseTo(12 * 2.5, 9);
  });
});

describe('HTML report', () => {
  it('embeds every chart as SVG, lists both runs, and escapes what came from configs', async () => {
    const html = await renderHtmlReport(runs, 'GRPO vs GRPO+R3');
    const charts = reportCharts(runs);
    for (const chart of charts) expect(html).toContain(`data-chart="${chart.id}"><svg`);
    expect(html.match(/<svg /g)).toHaveLength(charts.length);
    expect(html).toContain('<td>grpo-r3</td>');
    expect(html).not.toContain('<script>alert(1)</script>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    // Self-contained: nothing to fetch when viewing.
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)=/);
  });

  it('writes the file atomically (no temp file left behind)', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'moerl-report-'));
    try {
      const path = join(directory, 'report.html');
      await writeHtmlReport(path, runs);
      expect(await readFile(path, 'utf8')).toMatch(/^<!doctype html>/);
      const { readdir } = await import('node:fs/promises');
      expect(await readdir(directory)).toEqual(['report.html']);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
