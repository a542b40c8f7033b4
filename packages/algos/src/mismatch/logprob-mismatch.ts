import {
  checkMask,
  checkNumber,
  checkSequenceOffsets,
  checkValues,
  type NumberArray,
} from '../validation/checks.js';

export interface LogprobMismatchInput {
  /** Length numSequences + 1; response i owns tokens [offsets[i], offsets[i + 1]). */
  readonly sequenceOffsets: ArrayLike<number>;
  /** The trainer's logprobs of the sampled tokens. */
  readonly trainerLogprobs: NumberArray;
  /** The inference engine's logprobs of the same tokens. */
  readonly engineLogprobs: NumberArray;
  /** 1 for tokens to measure. Default: all. Must keep at least one token. */
  readonly responseMask?: ArrayLike<number>;
}

export interface LogprobMismatchOptions {
  /** A token is extreme when |trainer − engine| exceeds this. Default ln 2 (a probability ratio above 2). */
  readonly extremeThreshold?: number;
  /** Width of the response-position buckets of `byPosition`. Default 64. */
  readonly positionBucketSize?: number;
}

/** Statistics per bucket of response positions: bucket b covers positions [b · size, (b + 1) · size). */
export interface PositionMismatch {
  readonly bucketSize: number;
  readonly tokens: Int32Array;
  readonly meanAbsDelta: Float64Array;
  readonly maxAbsDelta: Float64Array;
  readonly k3Kl: Float64Array;
  readonly extremeTokenFraction: Float64Array;
}

export interface LogprobMismatch {
  /** Measured tokens. */
  readonly tokens: number;
  /** Mean k3 estimate of KL(engine ‖ trainer): exp(Δ) − Δ − 1 with Δ = trainer − engine (verl mismatch_k3_kl). */
  readonly k3Kl: number;
  /** The largest per-token k3 term. */
  readonly k3KlMax: number;
  /** Mean of engine − trainer (the k1 estimate of the same KL). */
  readonly k1Kl: number;
  readonly meanAbsDelta: number;
  readonly maxAbsDelta: number;
  /** Fraction of tokens with |Δ| above the threshold (ln 2). */
  readonly extremeTokenFraction: number;
  /** Fraction of responses (with measured tokens) holding at least one extreme token. */
  readonly extremeSequenceFraction: number;
  readonly byPosition: PositionMismatch;
}

/**
 * How far the trainer's logprobs drift from the inference engine's on the same sampled tokens: the
 * training–inference mismatch that routing replay shrinks. Sums run in float64.
 */
export function logprobMismatch(
  input: LogprobMismatchInput,
  options: LogprobMismatchOptions = {},
): LogprobMismatch {
  const offsets = input.sequenceOffsets;
  const numSequences = checkSequenceOffsets('sequenceOffsets', offsets);
  const tokenCount = offsets[numSequences]!;
  checkValues('trainerLogprobs', input.trainerLogprobs, tokenCount, 'token');
  checkValues('engineLogprobs', input.engineLogprobs, tokenCount, 'token');
  const mask = input.responseMask;
  if (mask !== undefined) checkMask('responseMask', mask, tokenCount);
  else if (tokenCount === 0) checkMask('responseMask', [], 0);
  const threshold = options.extremeThreshold ?? Math.LN2;
  checkNumber('extremeThreshold', threshold, { min: 0 });
  const bucketSize = options.positionBucketSize ?? 64;
  checkNumber('positionBucketSize', bucketSize, { min: 1 });

  let longest = 0;
  for (let i = 0; i < numSequences; i++) longest = Math.max(longest, offsets[i + 1]! - offsets[i]!);
  const buckets = Math.ceil(longest / Math.floor(bucketSize));
  const width = Math.floor(bucketSize);
  const bucketTokens = new Int32Array(buckets);
  const bucketAbs = new Float64Array(buckets);
  const bucketMax = new Float64Array(buckets);
  const bucketK3 = new Float64Array(buckets);
  const bucketExtreme = new Float64Array(buckets);

  let tokens = 0;
  let k3Sum = 0;
  let k3Max = 0;
  let k1Sum = 0;
  let absSum = 0;
  let absMax = 0;
  let extreme = 0;
  let liveSequences = 0;
  let extremeSequences = 0;
  for (let i = 0; i < numSequences; i++) {
    const start = offsets[i]!;
    let measured = false;
    let anyExtreme = false;
    for (let t = start; t < offsets[i + 1]!; t++) {
      if (mask !== undefined && mask[t] !== 1) continue;
      measured = true;
      const delta = input.trainerLogprobs[t]! - input.engineLogprobs[t]!;
      const abs = Math.abs(delta);
      const k3 = Math.exp(delta) - delta - 1;
      const isExtreme = abs > threshold;
      tokens++;
      k3Sum += k3;
      k3Max = Math.max(k3Max, k3);
      k1Sum -= delta;
      absSum += abs;
      absMax = Math.max(absMax, abs);
      if (isExtreme) {
        extreme++;
        anyExtreme = true;
      }
      const bucket = Math.floor((t - start) / width);
      bucketTokens[bucket]! += 1;
      bucketAbs[bucket]! += abs;
      bucketMax[bucket] = Math.max(bucketMax[bucket]!, abs);
      bucketK3[bucket]! += k3;
      if (isExtreme) bucketExtreme[bucket]! += 1;
    }
    if (measured) liveSequences++;
    if (anyExtreme) extremeSequences++;
  }
  for (let b = 0; b < buckets; b++) {
    const count = bucketTokens[b]!;
    if (count === 0) continue;
    bucketAbs[b]! /= count;
    bucketK3[b]! /= count;
    bucketExtreme[b]! /= count;
  }
  return {
    tokens,
    k3Kl: k3Sum / tokens,
    k3KlMax: k3Max,
    k1Kl: k1Sum / tokens,
    meanAbsDelta: absSum / tokens,
    maxAbsDelta: absMax,
    extremeTokenFraction: extreme / tokens,
    extremeSequenceFraction: extremeSequences / liveSequences,
    byPosition: {
      bucketSize: width,
      tokens: bucketTokens,
      meanAbsDelta: bucketAbs,
      maxAbsDelta: bucketMax,
      k3Kl: bucketK3,
      extremeTokenFraction: bucketExtreme,
    },
  };
}

/** The scalar fields of a mismatch as a flat metrics record, for logs. */
export function logprobMismatchMetrics(mismatch: LogprobMismatch): Record<string, number> {
  return {
    mismatchK3Kl: mismatch.k3Kl,
    mismatchK3KlMax: mismatch.k3KlMax,
    mismatchK1Kl: mismatch.k1Kl,
    mismatchMeanAbsDelta: mismatch.meanAbsDelta,
    mismatchMaxAbsDelta: mismatch.maxAbsDelta,
    extremeTokenFraction: mismatch.extremeTokenFraction,
    extremeSequenceFraction: mismatch.extremeSequenceFraction,
  };
}
