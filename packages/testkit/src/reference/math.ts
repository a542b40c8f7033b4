import { MoerlError } from '@moerl/core';

/*
 * Small pure helpers for the reference forward pass.
 *
 * Precision policy (the same everywhere in the reference): every helper reads float32 values, accumulates
 * in float64 (JavaScript numbers) and rounds its result to float32 once, when it is stored in the
 * returned Float32Array. Hugging Face running in float32 rounds after every elementary operation instead,
 * so the reference can differ from it, and from the backends, by a few float32 ulps per operation.
 */

function requireLength(what: string, actual: number, expected: number): void {
  if (actual !== expected) {
    throw new MoerlError('INVALID_ARGUMENT', `${what} has length ${actual}, expected ${expected}`, {
      details: { what, expected, found: actual },
    });
  }
}

/**
 * `matrix · vector (+ bias)` for a row-major `[rows, cols]` matrix, i.e. an `nn.Linear` with weight
 * `[out, in]`: `out[r] = Σ_c matrix[r, c] · vector[c] + bias[r]`.
 */
export function matVec(
  matrix: ArrayLike<number>,
  rows: number,
  cols: number,
  vector: ArrayLike<number>,
  bias?: ArrayLike<number>,
): Float32Array {
  requireLength('matVec matrix', matrix.length, rows * cols);
  requireLength('matVec vector', vector.length, cols);
  if (bias !== undefined) requireLength('matVec bias', bias.length, rows);
  const out = new Float32Array(rows);
  for (let row = 0; row < rows; row++) {
    let sum = bias === undefined ? 0 : bias[row]!;
    const start = row * cols;
    for (let col = 0; col < cols; col++) sum += matrix[start + col]! * vector[col]!;
    out[row] = sum;
  }
  return out;
}

/** RMSNorm as Qwen3 defines it: `x / sqrt(mean(x²) + eps) · weight`. */
export function rmsNorm(vector: ArrayLike<number>, weight: ArrayLike<number>, eps: number): Float32Array {
  requireLength('rmsNorm weight', weight.length, vector.length);
  let sumOfSquares = 0;
  for (let index = 0; index < vector.length; index++) sumOfSquares += vector[index]! * vector[index]!;
  const inverseRms = 1 / Math.sqrt(sumOfSquares / vector.length + eps);
  const out = new Float32Array(vector.length);
  for (let index = 0; index < vector.length; index++)
    out[index] = vector[index]! * inverseRms * weight[index]!;
  return out;
}

/**
 * Rotary inverse frequencies `1 / theta^(2i / headDim)` for `i < headDim / 2`, rounded to float32 at each
 * step the way HF computes them from a float32 `arange`.
 */
export function ropeInverseFrequencies(headDim: number, theta: number): Float32Array {
  if (!Number.isInteger(headDim) || headDim < 2 || headDim % 2 !== 0) {
    throw new MoerlError('INVALID_ARGUMENT', `headDim must be a positive even integer, found ${headDim}`);
  }
  const half = headDim / 2;
  const out = new Float32Array(half);
  for (let index = 0; index < half; index++) {
    const exponent = Math.fround((2 * index) / headDim);
    out[index] = Math.fround(1 / Math.fround(theta ** exponent));
  }
  return out;
}

/**
 * Rotate-half RoPE of one head vector at `position`: with `half = headDim / 2`,
 * `angle_i = fround(position · invFreq_i)`, `cos`/`sin` rounded to float32 and shared by both halves,
 * `out = x · cos + rotate_half(x) · sin` where `rotate_half(x) = concat(-x[half:], x[:half])`.
 */
export function rope(
  vector: ArrayLike<number>,
  position: number,
  inverseFrequencies: ArrayLike<number>,
): Float32Array {
  const half = inverseFrequencies.length;
  requireLength('rope vector', vector.length, 2 * half);
  const out = new Float32Array(vector.length);
  for (let index = 0; index < half; index++) {
    const angle = Math.fround(position * inverseFrequencies[index]!);
    const cos = Math.fround(Math.cos(angle));
    const sin = Math.fround(Math.sin(angle));
    const first = vector[index]!;
    const second = vector[index + half]!;
    out[index] = first * cos - second * sin;
    out[index + half] = second * cos + first * sin;
  }
  return out;
}

/** Numerically stable softmax (max subtracted), probabilities rounded to float32. */
export function softmax(values: ArrayLike<number>): Float32Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let index = 0; index < values.length; index++) max = Math.max(max, values[index]!);
  const exps = new Float64Array(values.length);
  let sum = 0;
  for (let index = 0; index < values.length; index++) {
    exps[index] = Math.exp(values[index]! - max);
    sum += exps[index]!;
  }
  const out = new Float32Array(values.length);
  for (let index = 0; index < values.length; index++) out[index] = exps[index]! / sum;
  return out;
}

/** `log softmax(values / temperature)`, computed in float64 and rounded to float32. */
export function logSoftmax(values: ArrayLike<number>, temperature = 1): Float32Array {
  const { scaled, logSumExp } = scaledLogSumExp(values, temperature);
  const out = new Float32Array(values.length);
  for (let index = 0; index < values.length; index++) out[index] = scaled[index]! - logSumExp;
  return out;
}

/** Entropy (nats) of `softmax(values / temperature)`, in float64. */
export function softmaxEntropy(values: ArrayLike<number>, temperature = 1): number {
  const { scaled, logSumExp } = scaledLogSumExp(values, temperature);
  let expected = 0;
  for (let index = 0; index < values.length; index++) {
    const probability = Math.exp(scaled[index]! - logSumExp);
    if (probability > 0) expected += probability * scaled[index]!;
  }
  return logSumExp - expected;
}

function scaledLogSumExp(
  values: ArrayLike<number>,
  temperature: number,
): { scaled: Float64Array; logSumExp: number } {
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `temperature must be a positive finite number, found ${temperature}`,
      {
        details: { found: temperature },
      },
    );
  }
  const scaled = new Float64Array(values.length);
  let max = Number.NEGATIVE_INFINITY;
  for (let index = 0; index < values.length; index++) {
    scaled[index] = values[index]! / temperature;
    max = Math.max(max, scaled[index]!);
  }
  let sum = 0;
  for (let index = 0; index < values.length; index++) sum += Math.exp(scaled[index]! - max);
  return { scaled, logSumExp: max + Math.log(sum) };
}

/** SiLU (swish): `x · sigmoid(x)`. */
export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/**
 * Indices of the `k` largest values, largest first. Ties are broken by the lower index (a value never
 * displaces an equal one met earlier). NaN is rejected with `NON_FINITE`, since it has no place in an order.
 */
export function topK(values: ArrayLike<number>, k: number): number[] {
  if (!Number.isInteger(k) || k < 0 || k > values.length) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `topK: k must be an integer in [0, ${values.length}], found ${k}`,
    );
  }
  for (let index = 0; index < values.length; index++) {
    if (Number.isNaN(values[index])) {
      throw new MoerlError('NON_FINITE', `topK: value at index ${index} is NaN`, { details: { index } });
    }
  }
  const chosen: number[] = [];
  const taken = new Uint8Array(values.length);
  for (let round = 0; round < k; round++) {
    let best = -1;
    for (let index = 0; index < values.length; index++) {
      if (taken[index] === 1) continue;
      if (best === -1 || values[index]! > values[best]!) best = index;
    }
    taken[best] = 1;
    chosen.push(best);
  }
  return chosen;
}
