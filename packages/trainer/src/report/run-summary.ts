import { finiteMax, finiteMean } from '../metrics/finite-stats.js';
import type { RunRecord } from '../metrics/step-metrics.js';

/** The figures a person compares across runs first. */
export interface RunSummary {
  readonly name: string;
  readonly steps: number;
  /** Held-out accuracy before the first RL step (NaN when unknown). */
  readonly initialEvalAccuracy: number;
  /** Held-out accuracy of the last evaluation (NaN when none ran). */
  readonly finalEvalAccuracy: number;
  /** Mean rollout accuracy over the last quarter of steps. */
  readonly finalAccuracy: number;
  /** Mean over steps of the trainer–engine k3 KL, trainer routing freely and replaying engine routing. */
  readonly meanKlFree: number;
  readonly meanKlReplay: number;
  readonly meanExtremeTokenFractionFree: number;
  readonly meanExtremeTokenFractionReplay: number;
  /** Mean over steps and MoE layers of the engine–trainer routing disagreement. */
  readonly meanRoutingDisagreement: number;
  readonly meanTokensWithRoutingDifference: number;
  /** Largest |trainer − engine| logprob difference over all steps, free and replayed (NaN when not recorded). */
  readonly maxAbsDeltaFree: number;
  readonly maxAbsDeltaReplay: number;
  /** Mean over steps of the share of the free-routing KL on tokens whose routing flipped (NaN when not recorded). */
  readonly meanKlFreeShareOnFlippedTokens: number;
  readonly skippedSteps: number;
  /**
   * Multi-turn tasks (NaN otherwise), means over steps: model turns and tool calls per conversation, sampled
   * tokens per model turn, the share of fed prompt positions the prefix cache served (across turns), and the
   * routing rows it served per step.
   */
  readonly conversation: {
    readonly turnsPerEpisode: number;
    readonly toolCallsPerEpisode: number;
    readonly tokensPerTurn: number;
    readonly prefixCacheHitRate: number;
    readonly routingRowsReused: number;
  };
  readonly rolloutSeconds: number;
  readonly trainSeconds: number;
}

export function summarizeRun(run: RunRecord): RunSummary {
  const rows = run.metrics;
  const lastQuarter = rows.slice(Math.floor((rows.length * 3) / 4));
  const evals = rows.filter((row) => row.evalAccuracy !== undefined);
  return {
    name: run.name,
    steps: rows.length,
    initialEvalAccuracy: run.initialEvalAccuracy ?? Number.NaN,
    finalEvalAccuracy: evals.at(-1)?.evalAccuracy ?? Number.NaN,
    finalAccuracy: finiteMean(lastQuarter.map((row) => row.accuracy)),
    meanKlFree: finiteMean(rows.map((row) => row.klFree)),
    meanKlReplay: finiteMean(rows.map((row) => row.klReplay)),
    meanExtremeTokenFractionFree: finiteMean(rows.map((row) => row.extremeTokenFractionFree)),
    meanExtremeTokenFractionReplay: finiteMean(rows.map((row) => row.extremeTokenFractionReplay)),
    meanRoutingDisagreement: finiteMean(rows.map((row) => finiteMean(row.routingDisagreement))),
    meanTokensWithRoutingDifference: finiteMean(rows.map((row) => row.tokensWithRoutingDifference)),
    maxAbsDeltaFree: finiteMax(rows.map((row) => row.maxAbsDeltaFree)),
    maxAbsDeltaReplay: finiteMax(rows.map((row) => row.maxAbsDeltaReplay)),
    meanKlFreeShareOnFlippedTokens: finiteMean(rows.map((row) => row.klFreeShareOnFlippedTokens)),
    skippedSteps: rows.at(-1)?.skippedSteps ?? 0,
    conversation: conversationSummary(rows),
    rolloutSeconds: rows.reduce((sum, row) => sum + row.rolloutSeconds, 0),
    trainSeconds: rows.reduce((sum, row) => sum + row.trainSeconds, 0),
  };
}

function conversationSummary(rows: RunRecord['metrics']): RunSummary['conversation'] {
  const turnRows = rows.filter((row) => row.turnsPerEpisode !== undefined);
  const mean = (value: (row: (typeof rows)[number]) => number | undefined) => finiteMean(turnRows.map(value));
  return {
    turnsPerEpisode: mean((row) => row.turnsPerEpisode),
    toolCallsPerEpisode: mean((row) => row.toolCallsPerEpisode),
    tokensPerTurn: mean((row) => row.tokensPerTurn),
    prefixCacheHitRate: mean((row) => row.prefixCacheHitRate),
    routingRowsReused: mean((row) => row.routingRowsReused),
  };
}

/** True when some run sampled conversations (its rows carry per-turn figures). */
export const hasConversations = (summaries: readonly RunSummary[]) =>
  summaries.some((summary) => Number.isFinite(summary.conversation.turnsPerEpisode));
