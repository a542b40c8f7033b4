import { MoerlError } from '@moerl/core';
import { cispoLoss } from '../losses/cispo-loss.js';
import { gspoLoss } from '../losses/gspo-loss.js';
import { gspoTokenLoss } from '../losses/gspo-token-loss.js';
import { type ImportanceSamplingConfig, importanceWeights } from '../losses/importance-sampling.js';
import { canonicalKlEstimator, type KlEstimator, klLoss } from '../losses/kl-estimators.js';
import {
  aggregateLoss,
  aggregationWeights,
  type GlobalBatch,
  type LossAggMode,
} from '../losses/loss-aggregation.js';
import type { PolicyLossInputs, PolicyLossResult } from '../losses/policy-loss-inputs.js';
import { ppoClipLoss } from '../losses/ppo-clip-loss.js';
import { sapoLoss } from '../losses/sapo-loss.js';
import { type RolloutCorrectionConfig, rolloutCorrection } from '../rollout-correction/rollout-correction.js';
import {
  checkChoice,
  checkMask,
  checkNumber,
  checkSequenceOffsets,
  checkValues,
  type NumberArray,
} from '../validation/checks.js';

/** The policy losses built in. */
export const POLICY_LOSSES = ['ppo-clip', 'gspo', 'gspo-token', 'cispo', 'sapo'] as const;
export type PolicyLossName = (typeof POLICY_LOSSES)[number];

/** What an objective captures when it is built for a batch: one value per response token, flattened. */
export interface PolicyBatch {
  /** Length numSequences + 1, starting at 0; response i owns tokens [offsets[i], offsets[i + 1]). */
  readonly sequenceOffsets: ArrayLike<number>;
  /** The trainer's logprobs of the sampled tokens before the update. */
  readonly oldLogprobs: NumberArray;
  /** Per-token advantages (e.g. `grpoAdvantages(...).tokenAdvantages`). */
  readonly advantages: NumberArray;
  /** 1 for tokens in the loss. Default: every token. Must keep at least one token. */
  readonly responseMask?: ArrayLike<number>;
  /** Reference-policy logprobs; required by `kl`. */
  readonly refLogprobs?: NumberArray;
  /** The inference engine's logprobs of the sampled tokens; required by `importanceSampling`. */
  readonly engineLogprobs?: NumberArray;
}

export interface KlLossConfig {
  /** β: the KL term is added to the loss as β · agg(k(logp, ref)). */
  readonly coefficient: number;
  /** Default 'k3' (verl's low_var_kl). */
  readonly estimator?: KlEstimator;
}

export interface PolicyObjectiveConfig {
  /** Default 'token-mean' (ppo-clip, cispo); 'seq-mean-token-mean' for gspo, gspo-token and sapo. */
  readonly lossAggMode?: LossAggMode;
  /** Divisor of 'seq-mean-token-sum-norm'. Default the longest response of the batch. */
  readonly lossScaleFactor?: number;
  /**
   * Normalise by the whole step (verl's global batch): the totals of all micro-batches and ranks, counted
   * with `globalBatchOf` over the full batch's loss mask (after rejection). Then the gradients of the
   * micro-batches sum to the gradient of the whole batch. Default: this batch alone.
   */
  readonly globalBatch?: GlobalBatch;
  /** ε_low. Default 0.2 (ppo-clip), 3e-4 (gspo, gspo-token), 1 (cispo: no lower bound). Unused by sapo. */
  readonly clipRatioLow?: number;
  /**
   * ε_high. Default 0.2 (ppo-clip; DAPO's clip-higher uses 0.28), 4e-4 (gspo, gspo-token), 0.28 (cispo).
   * Unused by sapo.
   */
  readonly clipRatioHigh?: number;
  /** sapo: gate temperature for A > 0. Default 1. */
  readonly tauPos?: number;
  /** sapo: gate temperature for A ≤ 0. Default 1.05. */
  readonly tauNeg?: number;
  /** Dual clip for negative advantages (ppo-clip only). Default true, as in verl. */
  readonly dualClip?: boolean;
  /** Dual-clip constant c > 1. Default 3. */
  readonly clipRatioC?: number;
  /** KL loss against `batch.refLogprobs`. Default none. */
  readonly kl?: KlLossConfig;
  /** Train–inference correction from `batch.engineLogprobs` (TIS / MIS). Default none. */
  readonly importanceSampling?: ImportanceSamplingConfig;
  /**
   * verl's rollout correction from `batch.engineLogprobs` (IS weights with batch normalisation and IcePop
   * bands, rejection by token / sequence k1–k3 criteria); its metrics are reported as `rc/<name>`.
   * Exclusive with `importanceSampling`. Default none.
   */
  readonly rolloutCorrection?: RolloutCorrectionConfig;
  /** Entropy bonus: the loss subtracts coefficient · agg(entropy). Default 0 (off). */
  readonly entropyCoefficient?: number;
}

export interface PolicyObjectiveEvaluation {
  readonly loss: number;
  /** ∂loss/∂logp_t, 0 on masked tokens. */
  readonly gradient: Float64Array;
  /** ∂loss/∂entropy_t when an entropy coefficient is set. */
  readonly entropyGradient?: Float64Array;
  readonly metrics: Readonly<Record<string, number>>;
}

export interface EvaluateOptions {
  /** Per-token entropy; required when entropyCoefficient > 0. */
  readonly entropy?: NumberArray;
  /**
   * gspo-token and cispo: the values sg(logp) holds (default the logprobs themselves). For gradient checks.
   */
  readonly stopGradientLogprobs?: NumberArray;
}

/** A policy objective bound to one batch, computing in float64. */
export interface PreparedPolicyObjective {
  readonly algorithm: PolicyLossName;
  readonly tokens: number;
  readonly sequenceOffsets: ArrayLike<number>;
  readonly needsEntropy: boolean;
  evaluate(logprobs: NumberArray, options?: EvaluateOptions): PolicyObjectiveEvaluation;
}

const DEFAULT_CLIP: Record<PolicyLossName, readonly [number, number]> = {
  'ppo-clip': [0.2, 0.2],
  gspo: [3e-4, 4e-4],
  'gspo-token': [3e-4, 4e-4],
  cispo: [1, 0.28],
  sapo: [0.2, 0.2],
};

/**
 * Validates a batch and a configuration, precomputes everything that does not depend on the current
 * logprobs (aggregation weights, importance weights, the MIS mask), and returns the float64 objective.
 */
export function preparePolicyObjective(
  algorithm: PolicyLossName,
  batch: PolicyBatch,
  config: PolicyObjectiveConfig = {},
): PreparedPolicyObjective {
  checkChoice('algorithm', algorithm, POLICY_LOSSES);
  if (batch === null || typeof batch !== 'object') {
    throw new MoerlError('INVALID_ARGUMENT', `batch must be an object, found ${String(batch)}`, {
      details: { field: 'batch' },
    });
  }
  const offsets = batch.sequenceOffsets;
  checkSequenceOffsets('sequenceOffsets', offsets);
  const tokens = offsets[offsets.length - 1]!;
  checkValues('oldLogprobs', batch.oldLogprobs, tokens, 'token');
  checkValues('advantages', batch.advantages, tokens, 'token');
  let mask: ArrayLike<number>;
  if (batch.responseMask === undefined) {
    if (tokens === 0) checkMask('responseMask', [], 0);
    mask = new Uint8Array(tokens).fill(1);
  } else {
    checkMask('responseMask', batch.responseMask, tokens);
    mask = batch.responseMask;
  }
  if (batch.refLogprobs !== undefined) checkValues('refLogprobs', batch.refLogprobs, tokens, 'token');
  if (batch.engineLogprobs !== undefined)
    checkValues('engineLogprobs', batch.engineLogprobs, tokens, 'token');

  const [defaultLow, defaultHigh] = DEFAULT_CLIP[algorithm];
  const clipRatioLow = config.clipRatioLow ?? defaultLow;
  const clipRatioHigh = config.clipRatioHigh ?? defaultHigh;
  checkNumber('clipRatioLow', clipRatioLow, { min: 0, max: 1 });
  checkNumber('clipRatioHigh', clipRatioHigh, { min: 0 });
  const dualClip = config.dualClip ?? true;
  const clipRatioC = config.clipRatioC ?? 3;
  checkNumber('clipRatioC', clipRatioC, { min: 1, minOpen: true });
  const entropyCoefficient = config.entropyCoefficient ?? 0;
  checkNumber('entropyCoefficient', entropyCoefficient, { min: 0 });
  const tauPos = config.tauPos ?? 1;
  const tauNeg = config.tauNeg ?? 1.05;
  checkNumber('tauPos', tauPos, { min: 0, minOpen: true });
  checkNumber('tauNeg', tauNeg, { min: 0, minOpen: true });
  const lossAggMode =
    config.lossAggMode ??
    (algorithm === 'ppo-clip' || algorithm === 'cispo' ? 'token-mean' : 'seq-mean-token-mean');

  const kl = config.kl;
  if (kl !== undefined) {
    checkNumber('kl.coefficient', kl.coefficient, { min: 0 });
    canonicalKlEstimator(kl.estimator ?? 'k3');
    if (batch.refLogprobs === undefined) {
      throw new MoerlError('INVALID_ARGUMENT', 'kl needs batch.refLogprobs, found none', {
        details: { field: 'refLogprobs' },
      });
    }
  }

  let lossMask = mask;
  let isWeights: Float64Array | undefined;
  const isMetrics: Record<string, number> = {};
  if (config.rolloutCorrection !== undefined) {
    if (config.importanceSampling !== undefined) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        'rolloutCorrection and importanceSampling are exclusive (both reweight by engine logprobs), found both set',
        { details: { field: 'rolloutCorrection' } },
      );
    }
    if (batch.engineLogprobs === undefined) {
      throw new MoerlError('INVALID_ARGUMENT', 'rolloutCorrection needs batch.engineLogprobs, found none', {
        details: { field: 'engineLogprobs' },
      });
    }
    const correction = rolloutCorrection(
      {
        sequenceOffsets: offsets,
        trainerLogprobs: batch.oldLogprobs,
        engineLogprobs: batch.engineLogprobs,
        responseMask: mask,
      },
      config.rolloutCorrection,
    );
    lossMask = correction.mask;
    if (correction.weights !== null) isWeights = correction.weights;
    for (const [key, value] of Object.entries(correction.metrics)) isMetrics[`rc/${key}`] = value;
    for (const [key, value] of Object.entries(correction.offPolicy)) isMetrics[`rc/${key}`] = value;
  }
  if (config.importanceSampling !== undefined) {
    if (batch.engineLogprobs === undefined) {
      throw new MoerlError('INVALID_ARGUMENT', 'importanceSampling needs batch.engineLogprobs, found none', {
        details: { field: 'engineLogprobs' },
      });
    }
    const correction = importanceWeights(
      offsets,
      batch.oldLogprobs,
      batch.engineLogprobs,
      mask,
      config.importanceSampling,
    );
    lossMask = correction.keepMask;
    isWeights = correction.weights;
    isMetrics.isWeightMean = correction.weightMean;
    isMetrics.isMaskedFraction = correction.maskedFraction;
    isMetrics.isSequenceMaskedFraction = correction.sequenceMaskedFraction;
  }
  const aggWeights = aggregationWeights(
    offsets,
    lossMask,
    lossAggMode,
    config.lossScaleFactor,
    config.globalBatch,
  );
  let lossWeights: Float64Array = aggWeights;
  if (isWeights !== undefined) {
    lossWeights = new Float64Array(tokens);
    for (let t = 0; t < tokens; t++) lossWeights[t] = aggWeights[t]! * isWeights[t]!;
  }
  let lossTokens = 0;
  for (let t = 0; t < tokens; t++) lossTokens += lossMask[t]!;

  const needsEntropy = entropyCoefficient > 0;
  const refLogprobs = batch.refLogprobs;
  return {
    algorithm,
    tokens,
    sequenceOffsets: offsets,
    needsEntropy,
    evaluate(logprobs, options = {}) {
      checkValues('logprobs', logprobs, tokens, 'token');
      const inputs: PolicyLossInputs = {
        sequenceOffsets: offsets,
        logprobs,
        oldLogprobs: batch.oldLogprobs,
        advantages: batch.advantages,
        mask: lossMask,
        lossWeights,
      };
      let policy: PolicyLossResult;
      if (algorithm === 'ppo-clip') {
        policy = ppoClipLoss(inputs, { clipRatioLow, clipRatioHigh, dualClip, clipRatioC });
      } else if (algorithm === 'gspo') {
        policy = gspoLoss(inputs, { clipRatioLow, clipRatioHigh });
      } else if (algorithm === 'sapo') {
        policy = sapoLoss(inputs, { tauPos, tauNeg });
      } else if (algorithm === 'cispo') {
        const detached = options.stopGradientLogprobs;
        if (detached !== undefined) checkValues('stopGradientLogprobs', detached, tokens, 'token');
        policy = cispoLoss(inputs, { clipRatioLow, clipRatioHigh }, detached ?? logprobs);
      } else {
        const detached = options.stopGradientLogprobs;
        if (detached !== undefined) checkValues('stopGradientLogprobs', detached, tokens, 'token');
        policy = gspoTokenLoss(inputs, { clipRatioLow, clipRatioHigh }, detached ?? logprobs);
      }
      let loss = policy.loss;
      const gradient = policy.gradient;
      const metrics: Record<string, number> = {
        pgLoss: policy.loss,
        clipFraction: policy.clipFraction,
        lowerClipFraction: policy.lowerClipFraction,
        approxKl: policy.approxKl,
        lossTokens,
        ...isMetrics,
      };
      if (kl !== undefined && refLogprobs !== undefined) {
        const term = klLoss(logprobs, refLogprobs, aggWeights, kl.estimator ?? 'k3');
        loss += kl.coefficient * term.kl;
        for (let t = 0; t < tokens; t++) gradient[t]! += kl.coefficient * term.gradient[t]!;
        metrics.klLoss = term.kl;
      }
      let entropyGradient: Float64Array | undefined;
      if (needsEntropy) {
        const entropy = options.entropy;
        if (entropy === undefined) {
          throw new MoerlError(
            'INVALID_ARGUMENT',
            'entropy is required when entropyCoefficient > 0, found none',
            {
              details: { field: 'entropy' },
            },
          );
        }
        checkValues('entropy', entropy, tokens, 'token');
        const meanEntropy = aggregateLoss(entropy, aggWeights);
        loss -= entropyCoefficient * meanEntropy;
        entropyGradient = new Float64Array(tokens);
        for (let t = 0; t < tokens; t++) entropyGradient[t] = -entropyCoefficient * aggWeights[t]!;
        metrics.entropy = meanEntropy;
      }
      metrics.loss = loss;
      return entropyGradient === undefined
        ? { loss, gradient, metrics }
        : { loss, gradient, entropyGradient, metrics };
    },
  };
}

/** One-shot float64 evaluation: prepare and evaluate. */
export function computePolicyObjective(
  algorithm: PolicyLossName,
  batch: PolicyBatch,
  logprobs: NumberArray,
  config: PolicyObjectiveConfig = {},
  options: EvaluateOptions = {},
): PolicyObjectiveEvaluation {
  return preparePolicyObjective(algorithm, batch, config).evaluate(logprobs, options);
}
