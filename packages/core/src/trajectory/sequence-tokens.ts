/**
 * Prompt and response as one token sequence: what a trainer feeds forward (all but the last token) and what
 * teacher-forced logprobs are computed over.
 */
export function sequenceTokens(sequence: {
  readonly promptIds: ArrayLike<number>;
  readonly responseIds: ArrayLike<number>;
}): Int32Array {
  const tokens = new Int32Array(sequence.promptIds.length + sequence.responseIds.length);
  tokens.set(sequence.promptIds);
  tokens.set(sequence.responseIds, sequence.promptIds.length);
  return tokens;
}
