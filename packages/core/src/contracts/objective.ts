/**
 * What a trainer hands an objective: the detached per-token logprobs of the current forward pass over
 * every response token of the batch, flattened in sequence order.
 */
export interface ObjectiveInput {
  /** Current logprobs, flattened: sequence i owns [sequenceOffsets[i], sequenceOffsets[i + 1]). */
  readonly logprobs: Float32Array;
  /** Length numSequences + 1, starting at 0 and ending at logprobs.length. */
  readonly sequenceOffsets: Int32Array;
  /** Per-token entropy, when the objective asked for it (`needsEntropy`) and the trainer supports it. */
  readonly entropy?: Float32Array;
}

export interface ObjectiveResult {
  /** The scalar loss value. Must be finite; trainers skip the step (and report it) otherwise. */
  readonly loss: number;
  /** d(loss)/d(logprob_t) for every token of `input.logprobs` (same length, 0 for masked tokens). */
  readonly gradient: Float32Array;
  /** d(loss)/d(entropy_t), when the objective uses entropy. */
  readonly entropyGradient?: Float32Array;
  /** Named diagnostics (clip fraction, approx KL, ...). */
  readonly metrics: Readonly<Record<string, number>>;
}

/**
 * The contract between algorithms and trainers. The trainer computes logprobs, calls `evaluate` with them
 * detached, and backpropagates Σ_t gradient_t · logprob_t (plus Σ entropyGradient_t · entropy_t). So
 * algorithms never see a tensor library and backends never see an algorithm. Everything else an objective
 * needs (advantages, old and reference logprobs, masks) it captures when it is built for a batch.
 */
export interface Objective {
  readonly name: string;
  readonly needsEntropy?: boolean;
  evaluate(input: ObjectiveInput): ObjectiveResult;
}
