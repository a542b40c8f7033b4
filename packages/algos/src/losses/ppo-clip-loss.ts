import {
  checkPolicyLossInputs,
  LOG_RATIO_CLAMP,
  type PolicyLossInputs,
  type PolicyLossResult,
} from './policy-loss-inputs.js';

export interface PpoClipConfig {
  /** ε_low: the ratio is clipped below at 1 − ε_low. */
  readonly clipRatioLow: number;
  /** ε_high: the ratio is clipped above at 1 + ε_high (clip-higher when > ε_low, as in DAPO). */
  readonly clipRatioHigh: number;
  /** Dual clip (Ye et al. 2020) for A < 0: the token loss is capped at −A · clipRatioC. */
  readonly dualClip: boolean;
  readonly clipRatioC: number;
}

/**
 * Token-level PPO clip loss (GRPO, DAPO, Dr.GRPO use it), as verl's `compute_policy_loss_vanilla`:
 * ratio = exp(clamp(logp − old, ±20)); ℓ = max(−A·ratio, −A·clip(ratio, 1 − ε_low, 1 + ε_high)); with dual
 * clip, ℓ = min(ℓ, −A·c) where A < 0. Loss = Σ_t lossWeights_t · ℓ_t.
 */
export function ppoClipLoss(inputs: PolicyLossInputs, config: PpoClipConfig): PolicyLossResult {
  checkPolicyLossInputs(inputs);
  const { logprobs, oldLogprobs, advantages, mask, lossWeights } = inputs;
  const lower = 1 - config.clipRatioLow;
  const upper = 1 + config.clipRatioHigh;
  const tokens = logprobs.length;
  const gradient = new Float64Array(tokens);
  let loss = 0;
  let counted = 0;
  let clipped = 0;
  let lowerClipped = 0;
  let klSum = 0;
  for (let t = 0; t < tokens; t++) {
    if (mask[t] !== 1) continue;
    const logRatio = logprobs[t]! - oldLogprobs[t]!;
    const clamped = Math.min(LOG_RATIO_CLAMP, Math.max(-LOG_RATIO_CLAMP, logRatio));
    const ratio = Math.exp(clamped);
    const ratioDerivative = clamped === logRatio ? ratio : 0;
    const advantage = advantages[t]!;
    const unclippedLoss = -advantage * ratio;
    const clippedLoss = -advantage * Math.min(upper, Math.max(lower, ratio));
    let tokenLoss: number;
    let tokenDerivative: number;
    if (clippedLoss > unclippedLoss) {
      // The clipped ratio is constant here, so the token gives no gradient.
      tokenLoss = clippedLoss;
      tokenDerivative = 0;
      clipped++;
    } else {
      tokenLoss = unclippedLoss;
      tokenDerivative = -advantage * ratioDerivative;
    }
    if (config.dualClip && advantage < 0) {
      const cap = -advantage * config.clipRatioC;
      if (tokenLoss > cap) {
        tokenLoss = cap;
        tokenDerivative = 0;
        lowerClipped++;
      }
    }
    const weight = lossWeights[t]!;
    loss += weight * tokenLoss;
    gradient[t] = weight * tokenDerivative;
    counted++;
    klSum -= clamped;
  }
  return {
    loss,
    gradient,
    clipFraction: counted === 0 ? 0 : clipped / counted,
    lowerClipFraction: counted === 0 ? 0 : lowerClipped / counted,
    approxKl: counted === 0 ? 0 : klSum / counted,
  };
}
