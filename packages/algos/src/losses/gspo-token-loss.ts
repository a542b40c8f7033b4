import type { NumberArray } from '../validation/checks.js';
import type { GspoConfig } from './gspo-loss.js';
import {
  checkPolicyLossInputs,
  GSPO_LOG_RATIO_MAX,
  meanLogRatio,
  type PolicyLossInputs,
  type PolicyLossResult,
} from './policy-loss-inputs.js';

/**
 * GSPO-token: ratio_t = sg(s_i) · exp(logp_t − sg(logp_t)). Its value equals the sequence ratio s_i, but
 * each token keeps its own advantage and its gradient flows only through its own logprob:
 * ∂ℓ_t/∂logp_t = −A_t · s_i where unclipped. Token loss ℓ_t = max(−A_t·ratio_t, −A_t·clip(ratio_t)).
 *
 * `stopGradientLogprobs` are the values sg(·) holds (default: `logprobs`). Passing them separately makes
 * the loss an ordinary function of `logprobs` whose derivative is the returned gradient, which is how
 * the tests check it against finite differences.
 */
export function gspoTokenLoss(
  inputs: PolicyLossInputs,
  config: GspoConfig,
  stopGradientLogprobs: NumberArray = inputs.logprobs,
): PolicyLossResult {
  checkPolicyLossInputs(inputs, { stopGradientLogprobs });
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
    const { count, mean: logSequenceRatio } = meanLogRatio(
      stopGradientLogprobs,
      oldLogprobs,
      mask,
      start,
      end,
    );
    if (count === 0) continue;
    for (let t = start; t < end; t++) {
      if (mask[t] !== 1) continue;
      const logRatio = logprobs[t]! - stopGradientLogprobs[t]! + logSequenceRatio;
      const ratio = Math.exp(Math.min(GSPO_LOG_RATIO_MAX, logRatio));
      const advantage = advantages[t]!;
      const unclippedLoss = -advantage * ratio;
      const clippedLoss = -advantage * Math.min(upper, Math.max(lower, ratio));
      const weight = lossWeights[t]!;
      if (clippedLoss > unclippedLoss) {
        loss += weight * clippedLoss;
        clipped++;
      } else {
        loss += weight * unclippedLoss;
        gradient[t] = logRatio < GSPO_LOG_RATIO_MAX ? -weight * advantage * ratio : 0;
      }
      klSum -= logprobs[t]! - oldLogprobs[t]!;
    }
    counted += count;
  }
  return {
    loss,
    gradient,
    clipFraction: counted === 0 ? 0 : clipped / counted,
    lowerClipFraction: 0,
    approxKl: counted === 0 ? 0 : klSum / counted,
  };
}
