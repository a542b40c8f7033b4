import { checkSequenceOffsets, checkTokenArrays, type NumberArray } from '../validation/checks.js';

/** What every policy loss reads. All arrays hold one value per token of the flattened batch. */
export interface PolicyLossInputs {
  /** Length numSequences + 1; sequence i owns tokens [sequenceOffsets[i], sequenceOffsets[i + 1]). */
  readonly sequenceOffsets: ArrayLike<number>;
  /** Current logprobs (the variable the gradient is taken with respect to). */
  readonly logprobs: NumberArray;
  /** Logprobs of the policy that sampled the batch, as the trainer computed them before the update. */
  readonly oldLogprobs: NumberArray;
  readonly advantages: NumberArray;
  /** 1 for tokens in the loss; metrics count only these. */
  readonly mask: ArrayLike<number>;
  /**
   * Detached per-token factors: aggregation weight × importance weight, 0 on masked tokens.
   * The loss is Σ_t lossWeights_t · ℓ_t.
   */
  readonly lossWeights: ArrayLike<number>;
}

/** A policy loss, its derivative with respect to every token's logprob, and diagnostics. */
export interface PolicyLossResult {
  readonly loss: number;
  readonly gradient: Float64Array;
  /** Fraction of loss tokens where the clipped term was the larger one. */
  readonly clipFraction: number;
  /** Fraction of loss tokens cut by the dual clip (A < 0, ratio above clipRatioC). 0 without dual clip. */
  readonly lowerClipFraction: number;
  /** Mean over loss tokens of old − current logprob (verl's ppo_kl). */
  readonly approxKl: number;
}

/** Log-ratio clamp of PPO, as in verl: exp never overflows, and the gradient is 0 beyond it. */
export const LOG_RATIO_CLAMP = 20;
/** GSPO's cap on the log of the sequence ratio (verl). */
export const GSPO_LOG_RATIO_MAX = 10;

/**
 * GSPO's log sequence ratio: the mean of (logp − old) over the loss tokens of [start, end), and how many
 * there are (0 when the response has none). `logprobs` are the values the ratio is computed from.
 */
export function meanLogRatio(
  logprobs: ArrayLike<number>,
  oldLogprobs: ArrayLike<number>,
  mask: ArrayLike<number>,
  start: number,
  end: number,
): { readonly count: number; readonly mean: number } {
  let count = 0;
  let sum = 0;
  for (let t = start; t < end; t++) {
    if (mask[t] !== 1) continue;
    count++;
    sum += logprobs[t]! - oldLogprobs[t]!;
  }
  return { count, mean: count === 0 ? 0 : sum / count };
}

/** Shapes only: offsets well formed and every per-token array one value per token. */
export function checkPolicyLossInputs(
  inputs: PolicyLossInputs,
  extra: Readonly<Record<string, ArrayLike<unknown>>> = {},
): void {
  checkSequenceOffsets('sequenceOffsets', inputs.sequenceOffsets);
  const tokens = inputs.sequenceOffsets[inputs.sequenceOffsets.length - 1]!;
  checkTokenArrays(tokens, {
    logprobs: inputs.logprobs,
    oldLogprobs: inputs.oldLogprobs,
    advantages: inputs.advantages,
    mask: inputs.mask,
    lossWeights: inputs.lossWeights,
    ...extra,
  });
}
