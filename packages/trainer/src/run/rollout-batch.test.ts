import { createRandom, type GenerateRequest, type RolloutEngine, type Trajectory } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { createReverseTask } from '../tasks/builtin-tasks.js';
import type { Task } from '../tasks/task.js';
import { collectRollouts } from './rollout-batch.js';

/** An engine that answers every request with the same response ids. */
function fixedEngine(responseIds: number[]): RolloutEngine {
  return {
    generate: async (requests: readonly GenerateRequest[]) =>
      requests.map(
        (request) =>
          ({
            id: request.id,
            groupId: request.groupId,
            promptIds: request.promptIds,
            responseIds: Int32Array.from(responseIds),
            engineLogprobs: new Float32Array(responseIds.length),
            routing: null,
          }) as unknown as Trajectory,
      ),
  } as unknown as RolloutEngine;
}

const options = {
  groupSize: 2,
  sampling: { temperature: 1, topP: 1, topK: 0, maxNewTokens: 4, stopTokenIds: [], seed: 0 },
  random: createRandom(1),
  formatReward: 0,
  idPrefix: 's1',
};

describe('collectRollouts', () => {
  it('refuses a non-finite reward, naming the task, the example and the response', async () => {
    const base = createReverseTask();
    const example = { prompt: 'ab', answer: 'ba' };
    for (const reward of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const task: Task = { ...base, score: () => ({ correct: false, reward }) };
      const response = base.answerIds(example);
      await expect(collectRollouts(fixedEngine(response), task, [example], options)).rejects.toMatchObject({
        code: 'NON_FINITE',
        message: `task "reverse": score() must return a finite reward, found ${reward} for the example with prompt "ab" (answer "ba") and response ${JSON.stringify(base.tokenizer.decode(response))}`,
      });
    }
    const scored = await collectRollouts(fixedEngine(base.answerIds(example)), base, [example], options);
    expect(Array.from(scored.rewards)).toEqual([1, 1]);
  });
});
