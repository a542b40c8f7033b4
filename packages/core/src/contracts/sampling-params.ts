/** How the rollout engine samples. */
export interface SamplingParams {
  /** Softmax temperature; logprobs are reported for this temperature. 0 means greedy. */
  readonly temperature: number;
  /** Nucleus sampling mass in (0, 1]; 1 disables it. */
  readonly topP: number;
  /** Keep only the k most likely tokens; 0 disables it. */
  readonly topK: number;
  readonly maxNewTokens: number;
  /** Generation of a sequence stops after emitting any of these ids (the id is part of the response). */
  readonly stopTokenIds: readonly number[];
  /** Seeds the sampler; with the same seed, weights and requests an engine must produce the same tokens. */
  readonly seed: number;
}

export const DEFAULT_SAMPLING_PARAMS: SamplingParams = {
  temperature: 1,
  topP: 1,
  topK: 0,
  maxNewTokens: 64,
  stopTokenIds: [],
  seed: 0,
};
