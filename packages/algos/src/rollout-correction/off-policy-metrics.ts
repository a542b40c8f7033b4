import { checkMask, checkSequenceOffsets, checkValues, type NumberArray } from '../validation/checks.js';

/** What the off-policy diagnostics compare: the trainer's and the engine's logprobs of the same tokens. */
export interface OffPolicyInput {
  /** Length numSequences + 1; response i owns tokens [offsets[i], offsets[i + 1]). */
  readonly sequenceOffsets: ArrayLike<number>;
  /** The trainer's logprobs of the sampled tokens (verl's old_log_prob). */
  readonly trainerLogprobs: NumberArray;
  /** The inference engine's logprobs of the same tokens (verl's rollout_log_prob). */
  readonly engineLogprobs: NumberArray;
  /** 1 for tokens to measure. Default: all. Must keep at least one token. */
  readonly responseMask?: ArrayLike<number>;
}

/**
 * Off-policy diagnostics between trainer and engine, as verl's `compute_offpolicy_metrics` defines them,
 * plus NeMo RL's `token_mult_prob_error`. Δ_t = trainer_t − engine_t (log ρ_t, ρ = π_trainer / π_engine).
 * Per-sequence means run over the responses that have measured tokens.
 */
export interface OffPolicyMetrics {
  /** Mean over responses of exp(−mean_t trainer_t): the trainer's perplexity. */
  readonly trainerPpl: number;
  /** Mean over responses of −mean_t trainer_t. */
  readonly trainerLogPpl: number;
  /** Mean over responses of exp(−mean_t engine_t). */
  readonly enginePpl: number;
  readonly engineLogPpl: number;
  /** Mean over responses of (mean_t engine_t − mean_t trainer_t) = log(trainerPpl_i / enginePpl_i). */
  readonly logPplDiff: number;
  readonly logPplAbsDiff: number;
  readonly logPplDiffMax: number;
  readonly logPplDiffMin: number;
  /** Mean over responses of exp(logPplDiff_i) (trainer PPL / engine PPL). */
  readonly pplRatio: number;
  /** Token mean of engine − trainer: the k1 estimate of KL(π_engine ‖ π_trainer). */
  readonly kl: number;
  /** Token mean of exp(Δ) − Δ − 1: the k3 estimate of the same KL (unclamped, as verl). */
  readonly k3Kl: number;
  /** Token-level χ²(π_trainer ‖ π_engine) = mean_t ρ_t² − 1, log ρ clamped to ±20. */
  readonly chi2Token: number;
  /** Sequence-level χ² = mean_i (Π_t ρ_t)² − 1, the log of the product clamped to ±20. */
  readonly chi2Seq: number;
  /** NeMo RL's token_mult_prob_error: token mean of exp(|Δ_t|); 1 when trainer and engine agree. */
  readonly tokenMultProbError: number;
  /** Measured tokens and responses. */
  readonly tokens: number;
  readonly sequences: number;
}

const SAFETY_BOUND = 20;
const clampLog = (value: number) => Math.min(SAFETY_BOUND, Math.max(-SAFETY_BOUND, value));

/** Computes the off-policy diagnostics in float64. */
export function offPolicyMetrics(input: OffPolicyInput): OffPolicyMetrics {
  const offsets = input.sequenceOffsets;
  const numSequences = checkSequenceOffsets('sequenceOffsets', offsets);
  const tokens = offsets[numSequences]!;
  checkValues('trainerLogprobs', input.trainerLogprobs, tokens, 'token');
  checkValues('engineLogprobs', input.engineLogprobs, tokens, 'token');
  const mask = input.responseMask;
  checkMask('responseMask', mask ?? new Uint8Array(tokens).fill(1), tokens);
  const trainer = input.trainerLogprobs;
  const engine = input.engineLogprobs;

  let counted = 0;
  let klSum = 0;
  let k3Sum = 0;
  let rhoSquaredSum = 0;
  let multErrorSum = 0;
  let sequences = 0;
  let trainerPpl = 0;
  let trainerLogPpl = 0;
  let enginePpl = 0;
  let engineLogPpl = 0;
  let diffSum = 0;
  let absDiffSum = 0;
  let diffMax = Number.NEGATIVE_INFINITY;
  let diffMin = Number.POSITIVE_INFINITY;
  let pplRatio = 0;
  let chi2SeqSum = 0;
  for (let i = 0; i < numSequences; i++) {
    let count = 0;
    let trainerSum = 0;
    let engineSum = 0;
    for (let t = offsets[i]!; t < offsets[i + 1]!; t++) {
      if (mask !== undefined && mask[t] !== 1) continue;
      count++;
      trainerSum += trainer[t]!;
      engineSum += engine[t]!;
      const delta = trainer[t]! - engine[t]!;
      klSum -= delta;
      k3Sum += Math.exp(delta) - delta - 1;
      rhoSquaredSum += Math.exp(2 * clampLog(delta));
      multErrorSum += Math.exp(Math.abs(delta));
    }
    if (count === 0) continue;
    counted += count;
    sequences++;
    const trainerMean = trainerSum / count;
    const engineMean = engineSum / count;
    trainerPpl += Math.exp(-trainerMean);
    trainerLogPpl += -trainerMean;
    enginePpl += Math.exp(-engineMean);
    engineLogPpl += -engineMean;
    const diff = engineMean - trainerMean;
    diffSum += diff;
    absDiffSum += Math.abs(diff);
    diffMax = Math.max(diffMax, diff);
    diffMin = Math.min(diffMin, diff);
    pplRatio += Math.exp(diff);
    chi2SeqSum += Math.exp(2 * clampLog(trainerSum - engineSum));
  }
  return {
    trainerPpl: trainerPpl / sequences,
    trainerLogPpl: trainerLogPpl / sequences,
    enginePpl: enginePpl / sequences,
    engineLogPpl: engineLogPpl / sequences,
    logPplDiff: diffSum / sequences,
    logPplAbsDiff: absDiffSum / sequences,
    logPplDiffMax: diffMax,
    logPplDiffMin: diffMin,
    pplRatio: pplRatio / sequences,
    kl: klSum / counted,
    k3Kl: k3Sum / counted,
    chi2Token: rhoSquaredSum / counted - 1,
    chi2Seq: chi2SeqSum / sequences - 1,
    tokenMultProbError: multErrorSum / counted,
    tokens: counted,
    sequences,
  };
}
