import { MoerlError, type RoutingRecord } from '@moerl/core';
import { logSoftmax, softmaxEntropy } from './math.js';
import type { ReferenceModel } from './reference-model.js';

export interface ReferenceLogprobsOptions {
  /** Sampling temperature: logits are divided by it before the log-softmax. Positive and finite. */
  readonly temperature: number;
  /** Experts to replay, as for `ReferenceModel.forward`. */
  readonly routing?: RoutingRecord;
  /** Also return the entropy of each position's next-token distribution. */
  readonly entropy?: boolean;
}

export interface ReferenceLogprobsResult {
  /** `log softmax(logits[t] / temperature)[tokens[t + 1]]` for t in [0, positions − 1). */
  readonly logprobs: Float32Array;
  /** Entropy (nats) of `softmax(logits[t] / temperature)`, t in [0, positions − 1); only when asked for. */
  readonly entropy?: Float32Array;
  /** The full forward logits, `[positions × vocabSize]`, before temperature. */
  readonly logits: Float32Array;
  /** The routing the forward pass used, all positions (the last one included). */
  readonly routing: RoutingRecord;
}

/**
 * Per-token log-probabilities of `tokens` under the reference model, the quantity an RL trainer computes:
 * position t scores token t + 1, so a sequence of n tokens gives n − 1 values. Computed in float64 from the
 * float32 logits, rounded to float32.
 */
/** Returns a positive finite temperature; throws `INVALID_ARGUMENT` otherwise. */
export function checkTemperature(temperature: number): number {
  if (typeof temperature !== 'number' || !(temperature > 0) || !Number.isFinite(temperature)) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `temperature must be a positive finite number, found ${String(temperature)}`,
      {
        details: { found: temperature },
      },
    );
  }
  return temperature;
}

export function referenceLogprobs(
  model: ReferenceModel,
  tokens: ArrayLike<number>,
  options: ReferenceLogprobsOptions,
): ReferenceLogprobsResult {
  const temperature = checkTemperature(options.temperature);
  const { logits, routing } = model.forward(
    tokens,
    options.routing === undefined ? {} : { routing: options.routing },
  );
  const vocab = model.config.vocabSize;
  const count = tokens.length - 1;
  const logprobs = new Float32Array(count);
  const entropy = options.entropy === true ? new Float32Array(count) : undefined;
  for (let position = 0; position < count; position++) {
    const row = logits.subarray(position * vocab, (position + 1) * vocab);
    logprobs[position] = logSoftmax(row, temperature)[tokens[position + 1]!]!;
    if (entropy !== undefined) entropy[position] = softmaxEntropy(row, temperature);
  }
  return entropy === undefined ? { logprobs, logits, routing } : { logprobs, entropy, logits, routing };
}
