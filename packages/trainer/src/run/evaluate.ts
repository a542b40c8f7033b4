import { createRandom, type RolloutEngine } from '@moerl/core';
import type { Task, TaskExample } from '../tasks/task.js';
import { collectConversations } from './conversation-rollouts.js';

/** Greedy accuracy on held-out problems (for a multi-turn task: of whole conversations). */
export async function evaluateAccuracy(
  engine: RolloutEngine,
  task: Task,
  examples: readonly TaskExample[],
  maxNewTokens: number,
): Promise<number> {
  if (examples.length === 0) return Number.NaN;
  if (task.environment !== undefined) {
    // A multi-turn task is judged on whole conversations, played greedily.
    const batch = await collectConversations(engine, task, task.environment, examples, {
      groupSize: 1,
      sampling: {
        temperature: 0,
        topP: 1,
        topK: 0,
        maxNewTokens,
        stopTokenIds: [task.tokenizer.eosId],
        seed: 0,
      },
      random: createRandom(0),
      idPrefix: 'eval',
    });
    return batch.correct.filter(Boolean).length / examples.length;
  }
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
