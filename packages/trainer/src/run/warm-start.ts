import { crossEntropyObjective, type PolicyTrainer, type SeededRandom } from '@moerl/core';
import { sampleTrainingExamples } from '../tasks/prompt-sampler.js';
import type { Task } from '../tasks/task.js';

export interface WarmStartProgress {
  readonly step: number;
  readonly steps: number;
  readonly loss: number;
}

/** Trains on reference answers so that RL starts with some reward to work with. */
export async function warmStart(
  trainer: PolicyTrainer,
  task: Task,
  options: {
    readonly steps: number;
    readonly batchSize: number;
    readonly random: SeededRandom;
    readonly heldOut: ReadonlySet<string>;
    readonly onProgress?: (progress: WarmStartProgress) => void;
    readonly shouldStop?: () => boolean;
  },
): Promise<number> {
  const objective = crossEntropyObjective();
  let loss = Number.NaN;
  for (let step = 1; step <= options.steps && options.shouldStop?.() !== true; step++) {
    const examples = sampleTrainingExamples(task, options.batchSize, options.random, options.heldOut);
    const batch = {
      sequences: examples.map((example) => ({
        promptIds: Int32Array.from(task.promptIds(example)),
        responseIds: Int32Array.from(task.answerIds(example)),
      })),
    };
    const result = await trainer.trainStep(batch, objective, { routing: 'free' });
    loss = result.loss;
    options.onProgress?.({ step, steps: options.steps, loss });
  }
  return loss;
}
