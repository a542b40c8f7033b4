import {
  checkPolicyLossInputs,
  LOG_RATIO_CLAMP,
  type PolicyLossInputs,
  type PolicyLossResult,
} from './policy-loss-inputs.js';

export interface SapoConfig {
  /** Gate temperature for tokens with A > 0. Default of the objective 1. */
  readonly tauPos: number;
  /** Gate temperature for tokens with A ≤ 0. Default of the objective 1.05. */
  readonly tauNeg: number;
}

/**
 * SAPO (Qwen, arXiv 2511.20347): a soft, temperature-controlled gate in place of PPO's hard clip, as verl's
 * `compute_policy_loss_sapo`:
 *
 *   r_t = exp(clamp(logp_t − old_t, ±20)),  τ = τ_pos if A_t > 0 else τ_neg,
 *   ℓ_t = −(4/τ) · σ(τ (r_t − 1)) · A_t,
 *   ∂ℓ_t/∂logp_t = −4 σ (1 − σ) r_t A_t  (0 where the clamp holds).
 *
 * At r = 1 the gradient equals the unclipped policy gradient (−A_t), and it decays smoothly as r leaves 1.
 * `clipFraction` reports the fraction of loss tokens whose gate weight 4σ(1 − σ) fell below 1/2.
 */
export function sapoLoss(inputs: PolicyLossInputs, config: SapoConfig): PolicyLossResult {
  checkPolicyLossInputs(inputs);
  const { logprobs, oldLogprobs, advantages, mask, lossWeights } = inputs;
  const gradient = new Float64Array(logprobs.length);
  let loss = 0;
  let counted = 0;
  let damped = 0;
  let klSum = 0;
  for (let t = 0; t < logprobs.length; t++) {
    if (mask[t] !== 1) continue;
    const logRatio = logprobs[t]! - oldLogprobs[t]!;
    const clamped = Math.min(LOG_RATIO_CLAMP, Math.max(-LOG_RATIO_CLAMP, logRatio));
    const ratio = Math.exp(clamped);
    const advantage = advantages[t]!;
    const tau = advantage > 0 ? config.tauPos : config.tauNeg;
    const sigma = 1 / (1 + Math.exp(-tau * (ratio - 1)));
    const gate = 4 * sigma * (1 - sigma);
    if (gate < 0.5) damped++;
    const weight = lossWeights[t]!;
    loss += weight * (-(4 / tau) * sigma * advantage);
    gradient[t] = clamped === logRatio ? -weight * gate * ratio * advantage : 0;
    counted++;
    klSum -= clamped;
  }
  return {
    loss,
    gradient,
    clipFraction: counted === 0 ? 0 : damped / counted,
    lowerClipFraction: 0,
    approxKl: counted === 0 ? 0 : klSum / counted,
  };
}
