import type { SamplingParams } from '../contracts/sampling-params.js';
import type { SeededRandom } from '../random/seeded-random.js';

export interface SampledToken {
  readonly token: number;
  /** log softmax(logits / temperature)[token] over the full vocabulary, before top-k / top-p truncation. */
  readonly logprob: number;
}

/**
 * Draws the next token from one row of logits, with the same semantics (and so, for the same seed, the
 * same draws) in every engine that uses it (the testkit reference engine, backend-onnx):
 *
 * - the logprobs are `log softmax(logits / T)` over the full vocabulary, in float64, rounded to float32;
 *   the reported logprob is that of the sampled token, untruncated, which is what a trainer recomputes;
 * - T = 0 is greedy (lowest id among ties) and reports the logprob at T = 1;
 * - top-k, then top-p (smallest prefix of the sorted tokens whose mass reaches p, at least one) restrict the
 *   candidates; one uniform draw picks among them in proportion to their probabilities.
 */
export function sampleToken(
  logits: ArrayLike<number>,
  params: Pick<SamplingParams, 'temperature' | 'topK' | 'topP'>,
  random: SeededRandom,
): SampledToken {
  const greedy = params.temperature === 0;
  const logprobs = logSoftmax(logits, greedy ? 1 : params.temperature);
  if (greedy) {
    let best = 0;
    for (let id = 1; id < logprobs.length; id++) if (logprobs[id]! > logprobs[best]!) best = id;
    return { token: best, logprob: logprobs[best]! };
  }
  const order = descendingOrder(logprobs);
  let candidates = params.topK > 0 ? order.slice(0, params.topK) : order;
  if (params.topP < 1) {
    let mass = 0;
    let keep = 0;
    while (keep < candidates.length && mass < params.topP) mass += Math.exp(logprobs[candidates[keep++]!]!);
    candidates = candidates.slice(0, Math.max(1, keep));
  }
  let total = 0;
  for (let index = 0; index < candidates.length; index++) total += Math.exp(logprobs[candidates[index]!]!);
  let threshold = random.nextFloat() * total;
  for (let index = 0; index < candidates.length; index++) {
    const id = candidates[index]!;
    threshold -= Math.exp(logprobs[id]!);
    if (threshold < 0) return { token: id, logprob: logprobs[id]! };
  }
  const last = candidates[candidates.length - 1]!;
  return { token: last, logprob: logprobs[last]! };
}

const ID_RANGE = 2 ** 21;

/**
 * Token ids by descending logprob, ties by ascending id (the reference's order). Each (logprob, id) pair is
 * packed into one exactly representable float64 key, so the native typed-array sort does the work: much
 * faster than a comparator sort, which dominated decode time at larger vocabularies.
 */
function descendingOrder(logprobs: Float32Array): Uint32Array {
  const count = logprobs.length;
  const ids = new Uint32Array(count);
  if (count > ID_RANGE) {
    const order = Array.from({ length: count }, (_, id) => id).sort(
      (a, b) => logprobs[b]! - logprobs[a]! || a - b,
    );
    ids.set(order);
    return ids;
  }
  const bits = new Uint32Array(logprobs.buffer, logprobs.byteOffset, count);
  const keys = new Float64Array(count);
  for (let id = 0; id < count; id++) {
    const raw = bits[id] === 0x80000000 ? 0 : bits[id]!; // −0 ties with +0, as in the comparator
    // Float32 bits → an unsigned integer that grows with the value; inverted for descending order.
    const ascending = raw & 0x80000000 ? ~raw >>> 0 : (raw | 0x80000000) >>> 0;
    keys[id] = (0xffffffff - ascending) * ID_RANGE + id; // < 2^53: exact
  }
  keys.sort();
  for (let index = 0; index < count; index++) ids[index] = keys[index]! % ID_RANGE;
  return ids;
}

/** `log softmax(values / temperature)`, accumulated in float64, rounded to float32. */
export function logSoftmax(values: ArrayLike<number>, temperature: number): Float32Array {
  const scaled = new Float64Array(values.length);
  let max = Number.NEGATIVE_INFINITY;
  for (let index = 0; index < values.length; index++) {
    scaled[index] = values[index]! / temperature;
    max = Math.max(max, scaled[index]!);
  }
  let sum = 0;
  for (let index = 0; index < values.length; index++) sum += Math.exp(scaled[index]! - max);
  const logSumExp = max + Math.log(sum);
  const out = new Float32Array(values.length);
  for (let index = 0; index < values.length; index++) out[index] = scaled[index]! - logSumExp;
  return out;
}
