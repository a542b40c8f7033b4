import { aggregationWeights, type GlobalBatch, type LossAggMode } from '@moerl/algos';
import { MoerlError } from '@moerl/core';

/** What the CISPO loss reads; every array holds one value per token of the flattened batch. */
export interface CispoInputs {
  /** Length numSequences + 1; sequence i owns tokens [sequenceOffsets[i], sequenceOffsets[i + 1]). */
  readonly sequenceOffsets: ArrayLike<number>;
  /** Current logprobs: the variable the gradient is taken with respect to. */
  readonly logprobs: ArrayLike<number>;
  /** Logprobs of the policy that sampled the batch. */
  readonly oldLogprobs: ArrayLike<number>;
  readonly advantages: ArrayLike<number>;
  /** 0/1 per token; default all 1. */
  readonly responseMask?: ArrayLike<number>;
}

export interface CispoConfig {
  /** ε_high: the importance weight is capped at 1 + ε_high. */
  readonly clipRatioHigh: number;
  readonly lossAggMode: LossAggMode;
  /** Normalise by the whole step's totals (see @moerl/algos `globalBatchOf`), not this batch's. */
  readonly globalBatch?: GlobalBatch;
}

export interface CispoLossResult {
  readonly loss: number;
  /** d(loss)/d(logprobs_t) with the weights held fixed (stop-gradient), float64. */
  readonly gradient: Float64Array;
  /** Fraction of loss tokens whose weight was capped. */
  readonly clipFraction: number;
  /** Mean importance weight over loss tokens, after the cap. */
  readonly weightMean: number;
}

function checkTokens(field: string, values: ArrayLike<number> | undefined, tokens: number): void {
  if (values === undefined || values.length !== tokens) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `${field} must hold one value per token (${tokens}), found ${values === undefined ? 'undefined' : `${values.length} values`}`,
      { details: { field, expected: tokens, found: values?.length ?? null } },
    );
  }
  for (let t = 0; t < tokens; t++) {
    if (!Number.isFinite(values[t])) {
      throw new MoerlError('NON_FINITE', `${field}[${t}] must be finite, found ${values[t]}`, {
        details: { field, index: t, found: String(values[t]) },
      });
    }
  }
}

/**
 * CISPO (MiniMax-M1): REINFORCE with a clipped, detached importance-sampling weight, so that no token's
 * gradient is dropped by clipping (as PPO's clip drops it), only down-weighted:
 *
 *   w_t = sg(min(exp(logp_t − old_t), 1 + ε_high)),   loss = Σ_t agg_t · (−w_t · A_t · logp_t)
 *   d(loss)/d(logp_t) = −agg_t · w_t · A_t
 *
 * `stopGradientLogprobs` are the logprobs the weights are computed from (default: `logprobs`). Passing them
 * separately makes the loss an ordinary function of `logprobs` whose derivative is `gradient`, which is how
 * the tests check it against finite differences.
 */
export function cispoLoss(
  inputs: CispoInputs,
  config: CispoConfig,
  stopGradientLogprobs: ArrayLike<number> = inputs.logprobs,
): CispoLossResult {
  const { sequenceOffsets, logprobs, oldLogprobs, advantages, responseMask } = inputs;
  if (!(config.clipRatioHigh > 0) || !Number.isFinite(config.clipRatioHigh)) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `clipRatioHigh must be a positive finite number, found ${config.clipRatioHigh}`,
      { details: { field: 'clipRatioHigh', found: config.clipRatioHigh } },
    );
  }
  // Checks the offsets and the mask, and gives each token its aggregation weight (0 when masked).
  const aggregation = aggregationWeights(
    sequenceOffsets,
    responseMask,
    config.lossAggMode,
    undefined,
    config.globalBatch,
  );
  const tokens = aggregation.length;
  checkTokens('logprobs', logprobs, tokens);
  checkTokens('oldLogprobs', oldLogprobs, tokens);
  checkTokens('advantages', advantages, tokens);
  checkTokens('stopGradientLogprobs', stopGradientLogprobs, tokens);

  // Capping the log-ratio before exp keeps the weight finite however far the policy moved.
  const logCap = Math.log1p(config.clipRatioHigh);
  const gradient = new Float64Array(tokens);
  let loss = 0;
  let lossTokens = 0;
  let clipped = 0;
  let weightSum = 0;
  for (let t = 0; t < tokens; t++) {
    if (aggregation[t] === 0) continue;
    const logRatio = stopGradientLogprobs[t]! - oldLogprobs[t]!;
    const weight = logRatio > logCap ? 1 + config.clipRatioHigh : Math.exp(logRatio);
    if (logRatio > logCap) clipped++;
    lossTokens++;
    weightSum += weight;
    const slope = -aggregation[t]! * weight * advantages[t]!;
    loss += slope * logprobs[t]!;
    gradient[t] = slope;
  }
  return {
    loss,
    gradient,
    clipFraction: lossTokens === 0 ? 0 : clipped / lossTokens,
    weightMean: lossTokens === 0 ? 0 : weightSum / lossTokens,
  };
}
