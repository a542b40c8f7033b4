/**
 * The math of this backend's update, in float64. The trainer trains the LM head W (`[vocab × hidden]`);
 * with h_t the head's input at the position predicting y_t, z_t = W·h_t and temperature T,
 *
 *   logprob_t = z_t[y_t]/T − logsumexp(z_t/T)
 *   d/dW Σ_t g_t·logprob_t = Σ_t (g_t/T)·(onehot(y_t) − softmax(z_t/T)) ⊗ h_t
 *
 * where g_t is the objective's d(loss)/d(logprob_t).
 */

/** log softmax(row / temperature)[target], in float64. */
export function tokenLogprob(row: ArrayLike<number>, target: number, temperature: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < row.length; j++) max = Math.max(max, row[j]! / temperature);
  let sum = 0;
  for (let j = 0; j < row.length; j++) sum += Math.exp(row[j]! / temperature - max);
  return row[target]! / temperature - max - Math.log(sum);
}

/** One scored position: its logits row, the head input, the target token and g_t. */
export interface ScoredPosition {
  readonly logits: ArrayLike<number>;
  readonly hidden: ArrayLike<number>;
  readonly target: number;
  readonly gradient: number;
}

/** d/dW Σ_t g_t·logprob_t, row-major `[vocab × hidden]`. */
export function lmHeadGradient(
  positions: Iterable<ScoredPosition>,
  vocab: number,
  hidden: number,
  temperature: number,
): Float64Array {
  const out = new Float64Array(vocab * hidden);
  const probabilities = new Float64Array(vocab);
  for (const { logits, hidden: h, target, gradient: g } of positions) {
    if (g === 0) continue;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < vocab; j++) max = Math.max(max, logits[j]! / temperature);
    let sum = 0;
    for (let j = 0; j < vocab; j++) {
      probabilities[j] = Math.exp(logits[j]! / temperature - max);
      sum += probabilities[j]!;
    }
    for (let j = 0; j < vocab; j++) {
      const coefficient = (g / temperature) * ((j === target ? 1 : 0) - probabilities[j]! / sum);
      const row = j * hidden;
      for (let d = 0; d < hidden; d++) out[row + d] = out[row + d]! + coefficient * h[d]!;
    }
  }
  return out;
}
