import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { syntheticRun } from '../__fixtures__/synthetic-runs.js';
import { writeHtmlReport } from './html-report.js';
import { reportCharts } from './report-charts.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));
if (CHROMIUM === undefined) {
  console.warn(
    'report browser test skipped: Chromium is not installed (apt-get install chromium; .ci/run does it)',
  );
}

describe.skipIf(CHROMIUM === undefined)('HTML report in headless Chromium', () => {
  it('renders every chart with visible marks and no page errors', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'moerl-report-'));
    const browser = await chromium.launch({
      executablePath: CHROMIUM!,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    try {
      // Two arms over two seeds (bands, per-arm panels) beside a run recorded before the mismatch split and
      // a multi-turn run.
      const runs = [
        syntheticRun('free-s0', false, 10, 3),
        syntheticRun('free-s1', false, 10, 5),
        syntheticRun('R3-s0', true, 10, 4),
        syntheticRun('R3-s1', true, 10, 6),
        syntheticRun('gspo', false, 10, 7, { mismatchDetail: false }),
        syntheticRun('agent', true, 10, 8, { conversations: true }),
      ];
      const path = join(directory, 'report.html');
      await writeHtmlReport(path, runs);
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      page.on('requestfailed', (request) => errors.push(`request failed: ${request.url()}`));
      await page.goto(pathToFileURL(path).href);
      const charts = await page.$$eval('figure.chart', (figures) =>
        figures.map((figure) => {
          const svg = figure.querySelector('svg');
          const box = svg?.getBoundingClientRect();
          return {
            id: figure.getAttribute('data-chart'),
            width: box?.width ?? 0,
            height: box?.height ?? 0,
            // Lines and bands are paths, heatmap cells and boxes are paths or rects inside mark groups.
            marks: figure.querySelectorAll(
              'g.mark-line path, g.mark-area path, g.mark-rect path, g.mark-rect rect, g.mark-symbol path',
            ).length,
          };
        }),
      );
      expect(charts.map((chart) => chart.id)).toEqual(reportCharts(runs).map((chart) => chart.id));
      for (const chart of charts) {
        expect(chart.width, chart.id ?? '').toBeGreaterThan(100);
        expect(chart.height, chart.id ?? '').toBeGreaterThan(50);
        expect(chart.marks, chart.id ?? '').toBeGreaterThan(0);
      }
      expect(charts.map((chart) => chart.id)).toContain('abs-delta-histogram');
      expect(charts.map((chart) => chart.id)).toContain('turns');
      expect(await page.locator('table.summary tbody tr').count()).toBe(runs.length);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      await rm(directory, { recursive: true, force: true });
    }
  });
});
