import { MoerlError } from '@moerl/core';
import { checkTokenArrays, type NumberArray } from '../validation/checks.js';

/**
 * KL estimators of KL(π || π_ref) from samples of π (Schulman's k1/k2/k3), `abs`, and verl's aliases:
 * `kl` = k1, `mse` = k2, `low_var_kl` = k3. A trailing `+` (verl's straight-through form, e.g. `k3+`)
 * keeps the estimator's value and takes the gradient of k2, whose expected gradient is the KL gradient.
 */
export const KL_ESTIMATORS = [
  'k1',
  'k2',
  'k3',
  'kl',
  'mse',
  'low_var_kl',
  'abs',
  'k1+',
  'k2+',
  'k3+',
  'kl+',
  'mse+',
  'low_var_kl+',
  'abs+',
] as const;
export type KlEstimator = (typeof KL_ESTIMATORS)[number];

const K3_LOG_RATIO_CLAMP = 20;
const K3_VALUE_CLAMP = 10;

/**
 * The canonical name of an estimator or alias, without the straight-through `+`; throws INVALID_ARGUMENT
 * naming `kl.estimator` otherwise.
 */
export function canonicalKlEstimator(estimator: KlEstimator): 'k1' | 'k2' | 'k3' | 'abs' {
  const base = typeof estimator === 'string' && estimator.endsWith('+') ? estimator.slice(0, -1) : estimator;
  switch (base) {
    case 'k1':
    case 'kl':
      return 'k1';
    case 'k2':
    case 'mse':
      return 'k2';
    case 'k3':
    case 'low_var_kl':
      return 'k3';
    case 'abs':
      return 'abs';
    default:
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `kl.estimator must be one of ${KL_ESTIMATORS.join(', ')}, found '${String(estimator)}'`,
        { details: { field: 'kl.estimator', found: estimator } },
      );
  }
}

/**
 * One token's estimate and its derivative with respect to logp:
 * - k1 = logp − ref, derivative 1
 * - k2 = ½(logp − ref)², derivative logp − ref
 * - k3 = exp(ref − logp) − (ref − logp) − 1, with ref − logp clamped to ±20 and the value to [−10, 10]
 *   (verl's low_var_kl); derivative 1 − exp(ref − logp), 0 where a clamp holds.
 * - abs = |logp − ref|, derivative sign(logp − ref) (0 at 0, as torch's abs)
 * - `<name>+`: the value of `<name>`, the derivative of k2 (logp − ref): verl's straight-through estimator.
 */
export function klTerm(estimator: KlEstimator, logprob: number, refLogprob: number): [number, number] {
  const kind = canonicalKlEstimator(estimator);
  const diff = logprob - refLogprob;
  const value = klValue(kind, diff);
  if (estimator.endsWith('+')) return [value[0], diff];
  return value;
}

function klValue(kind: 'k1' | 'k2' | 'k3' | 'abs', diff: number): [number, number] {
  if (kind === 'k1') return [diff, 1];
  if (kind === 'k2') return [0.5 * diff * diff, diff];
  if (kind === 'abs') return [Math.abs(diff), Math.sign(diff)];
  const logRatio = -diff;
  const clamped = Math.min(K3_LOG_RATIO_CLAMP, Math.max(-K3_LOG_RATIO_CLAMP, logRatio));
  const ratio = Math.exp(clamped);
  const value = ratio - clamped - 1;
  if (value > K3_VALUE_CLAMP) return [K3_VALUE_CLAMP, 0];
  return [value, clamped === logRatio ? 1 - ratio : 0];
}

export interface KlLossResult {
  /** Σ_t weights_t · k(logp_t, ref_t): the KL aggregated like the policy loss, before the coefficient. */
  readonly kl: number;
  /** ∂kl/∂logp_t. */
  readonly gradient: Float64Array;
}

/** A KL loss against a reference policy, aggregated with per-token weights (see aggregationWeights). */
export function klLoss(
  logprobs: NumberArray,
  refLogprobs: NumberArray,
  weights: ArrayLike<number>,
  estimator: KlEstimator,
): KlLossResult {
  canonicalKlEstimator(estimator);
  checkTokenArrays(logprobs.length, { refLogprobs, weights });
  const gradient = new Float64Array(logprobs.length);
  let kl = 0;
  for (let t = 0; t < logprobs.length; t++) {
    const weight = weights[t]!;
    if (weight === 0) continue;
    const [value, derivative] = klTerm(estimator, logprobs[t]!, refLogprobs[t]!);
    kl += weight * value;
    gradient[t] = weight * derivative;
  }
  return { kl, gradient };
}

/**
 * KL penalty in the reward (verl `apply_kl_penalty`, `use_kl_in_reward`): token reward
 * r_t − coefficient · k(logp_t, ref_t), with logp the logprobs of the policy that sampled the batch.
 * verl uses the same estimator function here as for the KL loss (its `kl_penalty`, default `kl` = k1);
 * there is no separate reward-side "low-variance" KL: `low_var_kl` is k3 with its clamps, as in the loss.
 * Only values are used, so a `+` suffix changes nothing here.
 */
export function applyKlPenalty(
  tokenRewards: NumberArray,
  logprobs: NumberArray,
  refLogprobs: NumberArray,
  coefficient: number,
  estimator: KlEstimator = 'k1',
): Float64Array {
  checkTokenArrays(tokenRewards.length, { logprobs, refLogprobs });
  const out = new Float64Array(tokenRewards.length);
  for (let t = 0; t < tokenRewards.length; t++) {
    out[t] = tokenRewards[t]! - coefficient * klTerm(estimator, logprobs[t]!, refLogprobs[t]!)[0];
  }
  return out;
}
