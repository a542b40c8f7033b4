import { MoerlError, type Objective, type ObjectiveInput, type ObjectiveResult } from '@moerl/core';
import {
  type PolicyBatch,
  type PolicyLossName,
  type PolicyObjectiveConfig,
  preparePolicyObjective,
} from './policy-objective.js';

/** Options every registered objective factory receives. */
export interface ObjectiveOptions extends PolicyObjectiveConfig {
  /** The batch the objective is built for (advantages, old / reference / engine logprobs, mask). */
  readonly batch: PolicyBatch;
  /** Settings for objectives registered by other packages; the built-ins ignore it. */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/**
 * A core `Objective` for one batch: `evaluate` takes the trainer's detached logprobs and returns the loss
 * and d(loss)/d(logprob) per token as a Float32Array (the math runs in float64).
 */
export function createPolicyObjective(
  algorithm: PolicyLossName,
  options: ObjectiveOptions,
  name: string = algorithm,
): Objective {
  const { batch, extra: _extra, ...config } = options;
  const prepared = preparePolicyObjective(algorithm, batch, config);
  return {
    name,
    needsEntropy: prepared.needsEntropy,
    evaluate(input: ObjectiveInput): ObjectiveResult {
      checkSameOffsets(input.sequenceOffsets, prepared.sequenceOffsets);
      const result = prepared.evaluate(
        input.logprobs,
        input.entropy === undefined ? {} : { entropy: input.entropy },
      );
      const gradient = Float32Array.from(result.gradient);
      return result.entropyGradient === undefined
        ? { loss: result.loss, gradient, metrics: result.metrics }
        : {
            loss: result.loss,
            gradient,
            entropyGradient: Float32Array.from(result.entropyGradient),
            metrics: result.metrics,
          };
    },
  };
}

function checkSameOffsets(found: ArrayLike<number>, expected: ArrayLike<number>): void {
  const sameLength = found !== undefined && found !== null && found.length === expected.length;
  let firstDifference = -1;
  if (sameLength) {
    for (let i = 0; i < expected.length && firstDifference < 0; i++)
      if (found[i] !== expected[i]) firstDifference = i;
  }
  if (!sameLength || firstDifference >= 0) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      sameLength
        ? `sequenceOffsets[${firstDifference}] must be ${expected[firstDifference]} as in the batch the objective was built for, found ${found[firstDifference]}`
        : `sequenceOffsets must have ${expected.length} entries as in the batch the objective was built for, found ${found?.length}`,
      { details: { field: 'sequenceOffsets' } },
    );
  }
}
