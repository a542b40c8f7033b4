import {
  checkPolicyLossInputs,
  GSPO_LOG_RATIO_MAX,
  meanLogRatio,
  type PolicyLossInputs,
  type PolicyLossResult,
} from './policy-loss-inputs.js';

export interface GspoConfig {
  /** Lower clip range of the sequence ratio. GSPO paper default 3e-4. */
  readonly clipRatioLow: number;
  /** Upper clip range of the sequence ratio. GSPO paper default 4e-4. */
  readonly clipRatioHigh: number;
}

/**
 * GSPO (Zheng et al. 2025): sequence-level importance ratio s_i = exp(mean over the response's loss
 * tokens of (logp − old)), log capped at 10 as in verl. Token loss ℓ_t = max(−A_t·s_i, −A_t·clip(s_i));
 * loss = Σ_t lossWeights_t · ℓ_t. The gradient reaches every loss token of response i through the mean:
 * ∂loss/∂logp_u = (s_i / n_i) · Σ_{t ∈ i, unclipped} lossWeights_t · (−A_t).
 */
export function gspoLoss(inputs: PolicyLossInputs, config: GspoConfig): PolicyLossResult {
  checkPolicyLossInputs(inputs);
  const { sequenceOffsets, logprobs, oldLogprobs, advantages, mask, lossWeights } = inputs;
  const lower = 1 - config.clipRatioLow;
  const upper = 1 + config.clipRatioHigh;
  const gradient = new Float64Array(logprobs.length);
  let loss = 0;
  let counted = 0;
  let clipped = 0;
  let klSum = 0;
  for (let i = 0; i + 1 < sequenceOffsets.length; i++) {
    const start = sequenceOffsets[i]!;
    const end = sequenceOffsets[i + 1]!;
    const { count, mean: logSequenceRatio } = meanLogRatio(logprobs, oldLogprobs, mask, start, end);
    if (count === 0) continue;
    const ratio = Math.exp(Math.min(GSPO_LOG_RATIO_MAX, logSequenceRatio));
    const ratioDerivative = logSequenceRatio < GSPO_LOG_RATIO_MAX ? ratio : 0;
    const clippedRatio = Math.min(upper, Math.max(lower, ratio));
    let slope = 0;
    for (let t = start; t < end; t++) {
      if (mask[t] !== 1) continue;
      const advantage = advantages[t]!;
      const unclippedLoss = -advantage * ratio;
      const clippedLoss = -advantage * clippedRatio;
      const weight = lossWeights[t]!;
      if (clippedLoss > unclippedLoss) {
        loss += weight * clippedLoss;
        clipped++;
      } else {
        loss += weight * unclippedLoss;
        slope -= weight * advantage;
      }
    }
    const tokenGradient = (slope * ratioDerivative) / count;
    for (let t = start; t < end; t++) if (mask[t] === 1) gradient[t] = tokenGradient;
    counted += count;
    klSum -= logSequenceRatio * count;
  }
  return {
    loss,
    gradient,
    clipFraction: counted === 0 ? 0 : clipped / counted,
    lowerClipFraction: 0,
    approxKl: counted === 0 ? 0 : klSum / counted,
  };
}
