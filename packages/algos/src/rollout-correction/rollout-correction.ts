import { MoerlError } from '@moerl/core';
import {
  checkChoice,
  checkMask,
  checkNumber,
  checkSequenceOffsets,
  checkValues,
  type NumberArray,
} from '../validation/checks.js';
import { type OffPolicyMetrics, offPolicyMetrics } from './off-policy-metrics.js';

/**
 * Rejection options, named as verl's `rollout_rs`. With ℓ_t = clamp(trainer_t − engine_t, ±20) = log ρ_t:
 * token k1 = −ℓ, k2 = ½ℓ², k3 = exp(ℓ) − 1 − ℓ; `token_*` tests each token, `seq_sum_*` / `seq_mean_*` /
 * `seq_max_*` the sum / mean / largest token value of a response and keep or reject it whole.
 * `seq_mean_k1` bounds the geometric-mean ratio of a response; `seq_mean_k2`, `seq_mean_k3` are its
 * k2 / k3 geometric-mean divergences.
 */
export const REJECTION_OPTIONS = [
  'token_k1',
  'token_k2',
  'token_k3',
  'seq_sum_k1',
  'seq_sum_k2',
  'seq_sum_k3',
  'seq_mean_k1',
  'seq_mean_k2',
  'seq_mean_k3',
  'seq_max_k2',
  'seq_max_k3',
] as const;
export type RejectionOption = (typeof REJECTION_OPTIONS)[number];

export interface RejectionCriterion {
  readonly option: RejectionOption;
  /**
   * k2 / k3 options: keep when the statistic ≤ upper. k1 options: keep when
   * log(lower) ≤ statistic ≤ log(upper), i.e. the ratio π_engine / π_trainer = exp(k1) lies in
   * [lower, upper] (verl's convention; with the default lower = 1 / upper the band is symmetric, the
   * same band for ρ = π_trainer / π_engine).
   */
  readonly upper: number;
  /** k1 options only. Default 1 / upper. */
  readonly lower?: number;
}

export interface RolloutIsConfig {
  /** `token`: w_t = ρ_t. `sequence`: every token of a response gets Π_t ρ_t. */
  readonly level: 'token' | 'sequence';
  /** Upper bound C: TIS truncates w at C. Default 2. */
  readonly threshold?: number;
  /**
   * With a lower bound, weights outside [lower, threshold] are set to 0 and the others kept as they are
   * (IcePop; verl's `"lower_upper"` threshold) instead of truncated.
   */
  readonly thresholdLower?: number;
  /** Divide the weights by their batch mean (token level: over tokens; sequence level: over responses). */
  readonly batchNormalize?: boolean;
}

export interface RolloutCorrectionConfig {
  /** Importance weights; omit for rejection only. */
  readonly is?: RolloutIsConfig;
  /** Rejection criteria; a token stays only if every criterion keeps it. */
  readonly rejection?: readonly RejectionCriterion[];
}

export interface RolloutCorrectionInput {
  readonly sequenceOffsets: ArrayLike<number>;
  /** The trainer's logprobs before the update (verl's old_log_prob). */
  readonly trainerLogprobs: NumberArray;
  /** The inference engine's logprobs (verl's rollout_log_prob). */
  readonly engineLogprobs: NumberArray;
  /** 1 for loss tokens. Default all. Must keep at least one token. */
  readonly responseMask?: ArrayLike<number>;
}

export interface RolloutCorrection {
  /** Detached IS weight per token (0 on masked tokens), after batch normalisation; null without `is`. */
  readonly weights: Float64Array | null;
  /** The response mask after rejection (IcePop zero weights do not change it). */
  readonly mask: Uint8Array;
  /**
   * IS diagnostics (before batch normalisation), rejection rates and the off-policy metrics; names follow
   * verl's `rollout_corr/*` keys in camelCase: `isMean`, `isStd`, `isMin`, `isMax`, `isEffSampleSize`,
   * `isRatioFractionHigh` (tokens or responses whose raw weight exceeded the upper bound: the clipped
   * fraction under TIS), `isRatioFractionLow`, `isOobRatio` (IcePop), `isSeqMean`, `isSeqStd`, `isSeqMin`,
   * `isSeqMax`, `isSeqMaxDeviation`, `isSeqFractionHigh`, `isSeqFractionLow`, `isBatchNormFactor`;
   * `rsMaskedFraction`, `rsSeqMaskedFraction` and per option `rs_<option>_maskedFraction`,
   * `rs_<option>_seqMaskedFraction`, `rs_<option>_mean`, `rs_<option>_max`.
   */
  readonly metrics: Readonly<Record<string, number>>;
  readonly offPolicy: OffPolicyMetrics;
}

const SAFETY_BOUND = 20;
const clampLog = (value: number) => Math.min(SAFETY_BOUND, Math.max(-SAFETY_BOUND, value));

function configError(field: string, message: string, found: unknown): MoerlError {
  return new MoerlError('INVALID_ARGUMENT', `${field} ${message}, found ${String(found)}`, {
    details: { field, found },
  });
}

/**
 * Rollout correction as verl's rollout-correction helper defines it (`compute_rollout_correction_and_
 * rejection_mask`): importance weights ρ = π_trainer / π_engine (TIS truncation or IcePop masking, optional
 * batch normalisation), rejection masks (token ratio bounds, sequence k1/k2/k3 sums and geometric means,
 * sequence max; combined with AND) and their diagnostics. Everything is computed once per batch, before the
 * update, and is detached: the weights multiply the policy loss, the mask replaces the loss mask.
 *
 * Differences from verl on purpose: float64; means over responses count only responses with loss tokens
 * (verl averages over every row); masked means divide by the count, without verl's + 1e-8.
 */
export function rolloutCorrection(
  input: RolloutCorrectionInput,
  config: RolloutCorrectionConfig,
): RolloutCorrection {
  const offsets = input.sequenceOffsets;
  const numSequences = checkSequenceOffsets('sequenceOffsets', offsets);
  const tokens = offsets[numSequences]!;
  checkValues('trainerLogprobs', input.trainerLogprobs, tokens, 'token');
  checkValues('engineLogprobs', input.engineLogprobs, tokens, 'token');
  const mask = input.responseMask ?? new Uint8Array(tokens).fill(1);
  checkMask('responseMask', mask, tokens);
  if (config === null || typeof config !== 'object')
    throw configError('rolloutCorrection', 'must be an object', config);
  const trainer = input.trainerLogprobs;
  const engine = input.engineLogprobs;

  const logRatio = new Float64Array(tokens);
  for (let t = 0; t < tokens; t++) logRatio[t] = trainer[t]! - engine[t]!;
  const live: number[] = [];
  const counts = new Int32Array(numSequences);
  let maskedTokens = 0;
  for (let i = 0; i < numSequences; i++) {
    for (let t = offsets[i]!; t < offsets[i + 1]!; t++) counts[i]! += mask[t]!;
    if (counts[i]! > 0) live.push(i);
    maskedTokens += counts[i]!;
  }

  const metrics: Record<string, number> = {};
  const weights =
    config.is === undefined
      ? null
      : isWeights(config.is, offsets, logRatio, mask, live, maskedTokens, metrics);
  const keep = new Uint8Array(tokens);
  for (let t = 0; t < tokens; t++) keep[t] = mask[t]!;
  if (config.rejection !== undefined) {
    if (!Array.isArray(config.rejection) || config.rejection.length === 0) {
      throw configError('rejection', 'must be a non-empty list of criteria', config.rejection);
    }
    for (const [index, criterion] of config.rejection.entries()) {
      reject(criterion, index, offsets, logRatio, mask, live, maskedTokens, keep, metrics);
    }
    let dropped = 0;
    let sequencesHit = 0;
    for (const i of live) {
      let hit = false;
      for (let t = offsets[i]!; t < offsets[i + 1]!; t++) {
        if (mask[t] === 1 && keep[t] === 0) {
          dropped++;
          hit = true;
        }
      }
      if (hit) sequencesHit++;
    }
    metrics.rsMaskedFraction = dropped / maskedTokens;
    metrics.rsSeqMaskedFraction = sequencesHit / live.length;
  }
  if (weights !== null) for (let t = 0; t < tokens; t++) if (keep[t] === 0) weights[t] = 0;
  const offPolicy = offPolicyMetrics({
    sequenceOffsets: offsets,
    trainerLogprobs: trainer,
    engineLogprobs: engine,
    responseMask: mask,
  });
  return { weights, mask: keep, metrics, offPolicy };
}

function isWeights(
  config: RolloutIsConfig,
  offsets: ArrayLike<number>,
  logRatio: Float64Array,
  mask: ArrayLike<number>,
  live: readonly number[],
  maskedTokens: number,
  metrics: Record<string, number>,
): Float64Array {
  const level = checkChoice('is.level', config.level, ['token', 'sequence'] as const);
  const upper = config.threshold ?? 2;
  checkNumber('is.threshold', upper, { min: 0, minOpen: true });
  const icePop = config.thresholdLower !== undefined;
  if (icePop) checkNumber('is.thresholdLower', config.thresholdLower!, { min: 0, minOpen: true, max: upper });
  const lower = config.thresholdLower ?? 1 / upper;
  const tokens = logRatio.length;
  const raw = new Float64Array(tokens);
  const sequenceLog = new Float64Array(offsets.length - 1);
  for (const i of live) {
    let sum = 0;
    for (let t = offsets[i]!; t < offsets[i + 1]!; t++) if (mask[t] === 1) sum += logRatio[t]!;
    sequenceLog[i] = sum;
    const sequenceWeight = Math.exp(clampLog(sum));
    for (let t = offsets[i]!; t < offsets[i + 1]!; t++) {
      if (mask[t] !== 1) continue;
      raw[t] = level === 'token' ? Math.exp(clampLog(logRatio[t]!)) : sequenceWeight;
    }
  }
  const weights = new Float64Array(tokens);
  let outOfBand = 0;
  for (let t = 0; t < tokens; t++) {
    if (mask[t] !== 1) continue;
    const w = raw[t]!;
    if (icePop) {
      const inBand = w >= lower && w <= upper;
      weights[t] = inBand ? w : 0;
      if (!inBand) outOfBand++;
    } else {
      weights[t] = Math.min(w, upper);
    }
  }

  const tokenMean = (values: ArrayLike<number>, map: (value: number) => number = (v) => v) => {
    let sum = 0;
    for (let t = 0; t < tokens; t++) if (mask[t] === 1) sum += map(values[t]!);
    return sum / maskedTokens;
  };
  metrics.isMean = tokenMean(weights);
  if (level === 'token') {
    metrics.isRatioFractionHigh = tokenMean(raw, (w) => (w > upper ? 1 : 0));
    metrics.isRatioFractionLow = tokenMean(raw, (w) => (w < lower ? 1 : 0));
    let max = Number.NEGATIVE_INFINITY;
    let min = Number.POSITIVE_INFINITY;
    for (let t = 0; t < tokens; t++) {
      if (mask[t] !== 1) continue;
      max = Math.max(max, weights[t]!);
      min = Math.min(min, weights[t]!);
    }
    metrics.isMax = max;
    metrics.isMin = min;
  } else {
    let logMax = Number.NEGATIVE_INFINITY;
    let logMin = Number.POSITIVE_INFINITY;
    let high = 0;
    let low = 0;
    for (const i of live) {
      logMax = Math.max(logMax, sequenceLog[i]!);
      logMin = Math.min(logMin, sequenceLog[i]!);
      if (sequenceLog[i]! > Math.log(upper)) high++;
      if (sequenceLog[i]! < Math.log(lower)) low++;
    }
    // The raw sequence extremes, as verl reports them (the maximum capped at exp(20)).
    metrics.isMax = Math.exp(Math.min(logMax, SAFETY_BOUND));
    metrics.isMin = Math.exp(logMin);
    metrics.isRatioFractionHigh = high / live.length;
    metrics.isRatioFractionLow = low / live.length;
  }
  if (icePop) metrics.isOobRatio = outOfBand / maskedTokens;
  // std and ESS of the applied weights clamped to [0, C] (population std; ESS normalised to (0, 1]).
  const clamped = (w: number) => Math.min(Math.max(w, 0), upper);
  const clampedMean = tokenMean(weights, clamped);
  const variance = tokenMean(weights, (w) => clamped(w) ** 2) - clampedMean ** 2;
  metrics.isStd = maskedTokens > 1 ? Math.sqrt(Math.max(variance, 0)) : 0;
  metrics.isEffSampleSize =
    clampedMean > 0 ? 1 / tokenMean(weights, (w) => (clamped(w) / clampedMean) ** 2) : 0;
  // Per-response mean weights (applied and raw).
  const sequenceMeans: number[] = [];
  let seqHigh = 0;
  let seqLow = 0;
  for (const i of live) {
    let applied = 0;
    let rawSum = 0;
    let count = 0;
    for (let t = offsets[i]!; t < offsets[i + 1]!; t++) {
      if (mask[t] !== 1) continue;
      applied += weights[t]!;
      rawSum += raw[t]!;
      count++;
    }
    sequenceMeans.push(applied / count);
    if (rawSum / count > upper) seqHigh++;
    if (rawSum / count < lower) seqLow++;
  }
  const n = sequenceMeans.length;
  const seqMean = sequenceMeans.reduce((a, b) => a + b, 0) / n;
  metrics.isSeqMean = seqMean;
  // Sample std (n − 1), as torch's default.
  metrics.isSeqStd =
    n > 1 ? Math.sqrt(sequenceMeans.reduce((a, b) => a + (b - seqMean) ** 2, 0) / (n - 1)) : 0;
  metrics.isSeqMax = Math.max(...sequenceMeans);
  metrics.isSeqMin = Math.min(...sequenceMeans);
  metrics.isSeqMaxDeviation = Math.max(...sequenceMeans.map((m) => Math.abs(m - 1)));
  metrics.isSeqFractionHigh = seqHigh / n;
  metrics.isSeqFractionLow = seqLow / n;

  if (config.batchNormalize === true) {
    // Token level: the mean over tokens; sequence level: the mean of the one weight per response.
    const mean = level === 'token' ? metrics.isMean : seqMean;
    if (mean > 1e-8) {
      for (let t = 0; t < tokens; t++) weights[t]! /= mean;
      metrics.isBatchNormFactor = mean;
    } else {
      metrics.isBatchNormFactor = 1;
    }
  }
  return weights;
}

function reject(
  criterion: RejectionCriterion,
  index: number,
  offsets: ArrayLike<number>,
  logRatio: Float64Array,
  mask: ArrayLike<number>,
  live: readonly number[],
  maskedTokens: number,
  keep: Uint8Array,
  metrics: Record<string, number>,
): void {
  const field = `rejection[${index}]`;
  if (criterion === null || typeof criterion !== 'object')
    throw configError(field, 'must be an object', criterion);
  const option = checkChoice(`${field}.option`, criterion.option, REJECTION_OPTIONS);
  checkNumber(`${field}.upper`, criterion.upper, { min: 0, minOpen: true });
  const isK1 = option.endsWith('k1');
  if (!isK1 && criterion.lower !== undefined) {
    throw configError(
      `${field}.lower`,
      `applies to k1 options only (option '${option}' takes an upper bound)`,
      criterion.lower,
    );
  }
  const lower = criterion.lower ?? 1 / criterion.upper;
  if (isK1) checkNumber(`${field}.lower`, lower, { min: 0, minOpen: true, max: criterion.upper });
  const logLower = Math.log(lower);
  const logUpper = Math.log(criterion.upper);
  const passes = (value: number) =>
    isK1 ? value >= logLower && value <= logUpper : value <= criterion.upper;
  const kind = option.slice(-2) as 'k1' | 'k2' | 'k3';
  const tokenStat = (t: number) => {
    const l = clampLog(logRatio[t]!);
    return kind === 'k1' ? -l : kind === 'k2' ? 0.5 * l * l : Math.exp(l) - 1 - l;
  };
  const prefix = `rs_${option}`;
  let dropped = 0;
  let sequencesHit = 0;
  let statSum = 0;
  let statMax = Number.NEGATIVE_INFINITY;
  let statCount = 0;
  for (const i of live) {
    const start = offsets[i]!;
    const end = offsets[i + 1]!;
    let hit = false;
    if (option.startsWith('token_')) {
      for (let t = start; t < end; t++) {
        if (mask[t] !== 1) continue;
        const stat = tokenStat(t);
        statSum += stat;
        statMax = Math.max(statMax, stat);
        statCount++;
        if (!passes(stat)) {
          keep[t] = 0;
          dropped++;
          hit = true;
        }
      }
    } else {
      let sum = 0;
      let max = Number.NEGATIVE_INFINITY;
      let count = 0;
      for (let t = start; t < end; t++) {
        if (mask[t] !== 1) continue;
        const stat = tokenStat(t);
        sum += stat;
        max = Math.max(max, stat);
        count++;
      }
      const stat = option.startsWith('seq_sum') ? sum : option.startsWith('seq_mean') ? sum / count : max;
      statSum += stat;
      statMax = Math.max(statMax, stat);
      statCount++;
      if (!passes(stat)) {
        for (let t = start; t < end; t++) if (mask[t] === 1) keep[t] = 0;
        dropped += count;
        hit = true;
      }
    }
    if (hit) sequencesHit++;
  }
  metrics[`${prefix}_maskedFraction`] = dropped / maskedTokens;
  metrics[`${prefix}_seqMaskedFraction`] = sequencesHit / live.length;
  // Token options: over tokens; sequence options: over responses.
  metrics[`${prefix}_mean`] = statSum / statCount;
  metrics[`${prefix}_max`] = statMax;
}
