import type { RunRecord } from '../metrics/step-metrics.js';
import { hasConversations, summarizeRun } from '../report/run-summary.js';
import { tableCell, textTable } from '../report/text-table.js';

/** A fixed-width table of the figures that show the R3 effect, one row per run. */
export function summaryTable(runs: readonly (RunRecord & { readonly wallSeconds?: number })[]): string {
  const summaries = runs.map(summarizeRun);
  // Multi-turn runs add their per-turn figures.
  const conversations = hasConversations(summaries);
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
    ...(conversations ? ['turns/ep', 'tool calls/ep', 'tokens/turn', 'cache hit', 'rows reused'] : []),
  ];
  const rows = runs.map((run, index) => {
    const summary = summaries[index]!;
    const lastQuarter = run.metrics.slice(Math.floor((run.metrics.length * 3) / 4));
    const reward =
      lastQuarter.reduce((total, row) => total + row.rewardMean, 0) / Math.max(1, lastQuarter.length);
    return [
      run.name,
      tableCell(summary.initialEvalAccuracy, 3),
      tableCell(summary.finalEvalAccuracy, 3),
      tableCell(reward, 3),
      tableCell(summary.meanKlFree, 0, true),
      tableCell(summary.meanKlReplay, 0, true),
      tableCell(summary.meanExtremeTokenFractionFree, 4),
      tableCell(summary.meanExtremeTokenFractionReplay, 4),
      tableCell(summary.meanRoutingDisagreement, 4),
      tableCell(summary.meanTokensWithRoutingDifference, 3),
      tableCell(run.wallSeconds ?? summary.rolloutSeconds + summary.trainSeconds, 1),
      ...(conversations
        ? [
            tableCell(summary.conversation.turnsPerEpisode, 2),
            tableCell(summary.conversation.toolCallsPerEpisode, 2),
            tableCell(summary.conversation.tokensPerTurn, 2),
            tableCell(summary.conversation.prefixCacheHitRate, 3),
            tableCell(summary.conversation.routingRowsReused, 0),
          ]
        : []),
    ];
  });
  return textTable(header, rows);
}
