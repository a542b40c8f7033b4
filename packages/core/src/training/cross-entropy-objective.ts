import type { Objective } from '../contracts/objective.js';

/**
 * Cross-entropy on the response tokens, averaged over every token of the batch: −mean(logprob), with
 * gradient −1/N per token. The supervised (warm-start) objective, and the simplest one a trainer test can use.
 */
export function crossEntropyObjective(): Objective {
  return {
    name: 'cross-entropy',
    evaluate({ logprobs }) {
      let sum = 0;
      for (const value of logprobs) sum += value;
      const count = Math.max(1, logprobs.length);
      return {
        loss: -sum / count,
        gradient: new Float32Array(logprobs.length).fill(-1 / count),
        metrics: { tokens: logprobs.length },
      };
    },
  };
}
