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
    rolloutSeconds: rows.reduce((sum, row) => sum + row.rolloutSeconds, 0),
    trainSeconds: rows.reduce((sum, row) => sum + row.trainSeconds, 0),
  };
}
