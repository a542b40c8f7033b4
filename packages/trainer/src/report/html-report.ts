import { writeFileAtomic } from '@moerl/core';
import type { RunRecord } from '../metrics/step-metrics.js';
import { renderSvg } from './render-svg.js';
import { reportCharts } from './report-charts.js';
import { hasConversations, type RunSummary, summarizeRun } from './run-summary.js';

const escapeHtml = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const figure = (value: number, digits = 3) =>
  Number.isFinite(value)
    ? Math.abs(value) >= 1e-3 || value === 0
      ? value.toFixed(digits)
      : value.toExponential(2)
    : '–';

/** Columns a multi-turn run adds to the summary. */
const CONVERSATION_HEADER = [
  'turns per episode',
  'tool calls per episode',
  'tokens per model turn',
  'prefix cache hit rate',
  'routing rows reused per step',
];

const conversationCells = ({ conversation }: RunSummary) => [
  figure(conversation.turnsPerEpisode, 2),
  figure(conversation.toolCallsPerEpisode, 2),
  figure(conversation.tokensPerTurn, 2),
  figure(conversation.prefixCacheHitRate),
  figure(conversation.routingRowsReused, 0),
];

function summaryTable(summaries: readonly RunSummary[]): string {
  const conversations = hasConversations(summaries);
  const header = [
    'run',
    'steps',
    'eval accuracy before RL',
    'eval accuracy',
    'rollout accuracy (last ¼)',
    'KL free',
    'KL replay',
    '|Δlogp|>ln2 free',
    '|Δlogp|>ln2 replay',
    'max |Δlogp| free',
    'max |Δlogp| replay',
    'share of free KL on flipped tokens',
    'routing disagreement',
    'tokens with a routing difference',
    'skipped',
    'rollout s',
    'train s',
    ...(conversations ? CONVERSATION_HEADER : []),
  ];
  const rows = summaries.map((summary) =>
    [
      escapeHtml(summary.name),
      String(summary.steps),
      figure(summary.initialEvalAccuracy),
      figure(summary.finalEvalAccuracy),
      figure(summary.finalAccuracy),
      figure(summary.meanKlFree, 4),
      figure(summary.meanKlReplay, 4),
      figure(summary.meanExtremeTokenFractionFree, 4),
      figure(summary.meanExtremeTokenFractionReplay, 4),
      figure(summary.maxAbsDeltaFree),
      figure(summary.maxAbsDeltaReplay),
      figure(summary.meanKlFreeShareOnFlippedTokens),
      figure(summary.meanRoutingDisagreement),
      figure(summary.meanTokensWithRoutingDifference),
      String(summary.skippedSteps),
      figure(summary.rolloutSeconds, 1),
      figure(summary.trainSeconds, 1),
      ...(conversations ? conversationCells(summary) : []),
    ]
      .map((cell) => `<td>${cell}</td>`)
      .join(''),
  );
  return `<table class="summary"><thead><tr>${header.map((cell) => `<th>${cell}</th>`).join('')}</tr></thead><tbody>${rows.map((row) => `<tr>${row}</tr>`).join('')}</tbody></table>`;
}

function configColumns(runs: readonly RunRecord[]): string {
  const columns = runs.map(
    (run) =>
      `<div class="config"><h3>${escapeHtml(run.name)}</h3><pre>${escapeHtml(JSON.stringify(run.config, null, 2))}</pre></div>`,
  );
  return `<div class="configs">${columns.join('')}</div>`;
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table.summary { border-collapse: collapse; font-size: 13px; }
table.summary th, table.summary td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
table.summary td:first-child, table.summary th:first-child { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure.chart { margin: 0; border: 1px solid #eee; padding: 8px; }
.configs { display: flex; gap: 12px; overflow-x: auto; }
.config pre { font-size: 12px; background: #f7f7f7; padding: 8px; }
`;

/** A self-contained HTML report: summary table, charts as inline SVG, configs side by side. */
/** Text shown above the summary, e.g. a study's verdict and per-arm table (preformatted, escaped). */
export interface ReportPreamble {
  readonly heading: string;
  readonly text: string;
}

export async function renderHtmlReport(
  runs: readonly RunRecord[],
  title = 'moerl report',
  preamble: readonly ReportPreamble[] = [],
): Promise<string> {
  const charts = reportCharts(runs);
  const figures: string[] = [];
  for (const chart of charts) {
    const svg = await renderSvg(chart.spec);
    figures.push(`<figure class="chart" data-chart="${chart.id}">${svg}</figure>`);
  }
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body>
<h1>${escapeHtml(title)}</h1>
<p>Trainer–engine mismatch is measured on the engine's sampled tokens: KL is the per-token k3 estimate between trainer and engine logprobs, once with the trainer routing freely and once replaying the engine's routing (R3).</p>
${preamble.map((section) => `<h2>${escapeHtml(section.heading)}</h2>\n<pre class="preamble">${escapeHtml(section.text)}</pre>`).join('\n')}
<h2>Summary</h2>
${summaryTable(runs.map(summarizeRun))}
<h2>Charts</h2>
<div class="charts">${figures.join('\n')}</div>
<h2>Configurations</h2>
${configColumns(runs)}
</body>
</html>
`;
}

export async function writeHtmlReport(
  path: string,
  runs: readonly RunRecord[],
  title?: string,
  preamble?: readonly ReportPreamble[],
): Promise<void> {
  await writeFileAtomic(path, await renderHtmlReport(runs, title, preamble));
}
