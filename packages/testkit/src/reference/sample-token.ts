import type { SamplingParams, SeededRandom } from '@moerl/core';
import { logSoftmax } from './math.js';

export interface SampledToken {
  readonly token: number;
  /** log softmax(logits / temperature)[token] over the full vocabulary (before top-k / top-p truncation). */
  readonly logprob: number;
}

/**
 * Draws the next token from one row of logits. Temperature 0 is greedy (lowest id among ties) and reports
 * the logprob at temperature 1. Top-k then top-p restrict the candidates; the reported logprob stays the
 * untruncated one, which is what the trainer recomputes.
 */
export function sampleToken(
  logits: ArrayLike<number>,
  params: Pick<SamplingParams, 'temperature' | 'topK' | 'topP'>,
  random: SeededRandom,
): SampledToken {
  const greedy = params.temperature === 0;
  const logprobs = logSoftmax(logits, greedy ? 1 : params.temperature);
  const order = Array.from({ length: logprobs.length }, (_, id) => id).sort(
    (a, b) => logprobs[b]! - logprobs[a]! || a - b,
  );
  if (greedy) return { token: order[0]!, logprob: logprobs[order[0]!]! };

  let candidates = params.topK > 0 ? order.slice(0, params.topK) : order;
  if (params.topP < 1) {
    let mass = 0;
    let keep = 0;
    while (keep < candidates.length && mass < params.topP) mass += Math.exp(logprobs[candidates[keep++]!]!);
    candidates = candidates.slice(0, Math.max(1, keep));
  }
  let total = 0;
  for (const id of candidates) total += Math.exp(logprobs[id]!);
  let threshold = random.nextFloat() * total;
  for (const id of candidates) {
    threshold -= Math.exp(logprobs[id]!);
    if (threshold < 0) return { token: id, logprob: logprobs[id]! };
  }
  const last = candidates[candidates.length - 1]!;
  return { token: last, logprob: logprobs[last]! };
}
