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
    expect(summary.maxAbsDeltaFree).toBe(Math.max(...rows.map((row) => row.maxAbsDeltaFree!)));
    expect(summary.maxAbsDeltaReplay).toBe(Math.max(...rows.map((row) => row.maxAbsDeltaReplay!)));
    let share = 0;
    for (const row of rows) share += row.klFreeShareOnFlippedTokens!;
    expect(summary.meanKlFreeShareOnFlippedTokens).toBeCloseTo(share / rows.length, 12);
  });

  it('gives NaN for the figures a run did not record', () => {
    const summary = summarizeRun(syntheticRun('old', false, 4, 1, { mismatchDetail: false }));
    expect(summary.maxAbsDeltaFree).toBeNaN();
    expect(summary.maxAbsDeltaReplay).toBeNaN();
    expect(summary.meanKlFreeShareOnFlippedTokens).toBeNaN();
    expect(summary.initialEvalAccuracy).toBeNaN();
    expect(summary.conversation.turnsPerEpisode).toBeNaN();
  });

  it('averages the per-turn figures of a multi-turn run over its steps', () => {
    const run = syntheticRun('agent', true, 8, 3, { conversations: true });
    const { conversation } = summarizeRun(run);
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    expect(conversation.turnsPerEpisode).toBeCloseTo(
      mean(run.metrics.map((row) => row.turnsPerEpisode!)),
      12,
    );
    expect(conversation.toolCallsPerEpisode).toBeCloseTo(
      mean(run.metrics.map((row) => row.toolCallsPerEpisode!)),
      12,
    );
    expect(conversation.tokensPerTurn).toBeCloseTo(mean(run.metrics.map((row) => row.tokensPerTurn!)), 12);
    expect(conversation.prefixCacheHitRate).toBeCloseTo(0.4, 12);
    expect(conversation.routingRowsReused).toBeCloseTo(
      mean(run.metrics.map((row) => row.routingRowsReused!)),
      12,
    );
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

  it('shows max |Δlogp| and the KL share on flipped tokens, with – where a run did not record them', async () => {
    const old = syntheticRun('old', false, 4, 3, { mismatchDetail: false });
    const html = await renderHtmlReport([runs[0]!, old]);
    const header = [...html.matchAll(/<th>([^<]*)<\/th>/g)].map((match) => match[1]);
    const cells = (name: string) => {
      const row = html.split(`<tr><td>${name}</td>`)[1]!.split('</tr>')[0]!;
      return [name, ...[...row.matchAll(/<td>([^<]*)<\/td>/g)].map((match) => match[1])];
    };
    const column = (title: string) => header.indexOf(title);
    const summary = summarizeRun(runs[0]!);
    for (const [title, value] of [
      ['max |Δlogp| free', summary.maxAbsDeltaFree],
      ['max |Δlogp| replay', summary.maxAbsDeltaReplay],
      ['share of free KL on flipped tokens', summary.meanKlFreeShareOnFlippedTokens],
    ] as const) {
      expect(column(title), title).toBeGreaterThan(0);
      expect(cells('grpo')[column(title)]).toBe(value.toFixed(3));
      expect(cells('old')[column(title)]).toBe('–');
    }
  });

  it('adds per-turn columns when a run is multi-turn, and only then', async () => {
    const agent = syntheticRun('agent', true, 8, 3, { conversations: true });
    const html = await renderHtmlReport([runs[0]!, agent]);
    expect(html).toContain('<th>tool calls per episode</th>');
    const cells = (name: string) =>
      [
        ...html
          .split(`<tr><td>${name}</td>`)[1]!
          .split('</tr>')[0]!
          .matchAll(/<td>([^<]*)<\/td>/g),
      ].map((match) => match[1]);
    const summary = summarizeRun(agent).conversation;
    expect(cells('agent').slice(-5)).toEqual([
      summary.turnsPerEpisode.toFixed(2),
      summary.toolCallsPerEpisode.toFixed(2),
      summary.tokensPerTurn.toFixed(2),
      summary.prefixCacheHitRate.toFixed(3),
      summary.routingRowsReused.toFixed(0),
    ]);
    expect(cells('grpo').slice(-5)).toEqual(['–', '–', '–', '–', '–']);
    expect(await renderHtmlReport(runs)).not.toContain('tool calls per episode');
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
