import {
  checkPolicyLossInputs,
  LOG_RATIO_CLAMP,
  type PolicyLossInputs,
  type PolicyLossResult,
} from './policy-loss-inputs.js';

export interface CispoConfig {
  /** The weight is clipped below at 1 − ε_low; 1 (the default of the objective) means no lower bound. */
  readonly clipRatioLow: number;
  /** The weight is capped at 1 + ε_high. */
  readonly clipRatioHigh: number;
}

/**
 * CISPO (MiniMax-M1): REINFORCE with a clipped, detached importance weight, so clipping only down-weights a
 * token's gradient instead of dropping it as PPO's clip does:
 *
 *   w_t = sg(clip(exp(logp_t − old_t), 1 − ε_low, 1 + ε_high)),   ℓ_t = −w_t · A_t · logp_t
 *   ∂loss/∂logp_t = −lossWeights_t · w_t · A_t
 *
 * `stopGradientLogprobs` are the values the weights are computed from (default `logprobs`); passing them
 * apart makes the loss an ordinary function of `logprobs` for finite-difference checks. `clipFraction` is
 * the fraction of loss tokens whose weight was clipped.
 */
export function cispoLoss(
  inputs: PolicyLossInputs,
  config: CispoConfig,
  stopGradientLogprobs: ArrayLike<number> = inputs.logprobs,
): PolicyLossResult {
  checkPolicyLossInputs(inputs, { stopGradientLogprobs });
  const { logprobs, oldLogprobs, advantages, mask, lossWeights } = inputs;
  const lower = 1 - config.clipRatioLow;
  const upper = 1 + config.clipRatioHigh;
  const gradient = new Float64Array(logprobs.length);
  let loss = 0;
  let counted = 0;
  let clipped = 0;
  let klSum = 0;
  for (let t = 0; t < logprobs.length; t++) {
    if (mask[t] !== 1) continue;
    const logRatio = stopGradientLogprobs[t]! - oldLogprobs[t]!;
    const ratio = Math.exp(Math.min(LOG_RATIO_CLAMP, Math.max(-LOG_RATIO_CLAMP, logRatio)));
    const weight = Math.min(upper, Math.max(lower, ratio));
    if (weight !== ratio) clipped++;
    const slope = -lossWeights[t]! * weight * advantages[t]!;
    loss += slope * logprobs[t]!;
    gradient[t] = slope;
    counted++;
    klSum += oldLogprobs[t]! - logprobs[t]!;
  }
  return {
    loss,
    gradient,
    clipFraction: counted === 0 ? 0 : clipped / counted,
    lowerClipFraction: 0,
    approxKl: counted === 0 ? 0 : klSum / counted,
  };
}
