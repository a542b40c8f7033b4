import type { RolloutEngine } from '@moerl/core';
import type { Task, TaskExample } from '../tasks/task.js';

/** Greedy accuracy on held-out problems. */
export async function evaluateAccuracy(
  engine: RolloutEngine,
  task: Task,
  examples: readonly TaskExample[],
  maxNewTokens: number,
): Promise<number> {
  if (examples.length === 0) return Number.NaN;
  const trajectories = await engine.generate(
    examples.map((example, index) => ({
      id: `eval-${index}`,
      groupId: `eval-${index}`,
      promptIds: Int32Array.from(task.promptIds(example)),
    })),
    { temperature: 0, topP: 1, topK: 0, maxNewTokens, stopTokenIds: [task.tokenizer.eosId], seed: 0 },
  );
  let correct = 0;
  trajectories.forEach((trajectory, index) => {
    if (task.score(examples[index]!, trajectory.responseIds).correct) correct++;
  });
  return correct / examples.length;
}
