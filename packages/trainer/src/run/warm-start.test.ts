import { createRandom } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { tinyRun } from '../__fixtures__/tiny-run.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { sampleTrainingExamples } from '../tasks/prompt-sampler.js';
import { createTask } from '../tasks/task-registry.js';
import { warmStartProblems } from './warm-start.js';

describe('warmStartProblems', () => {
  it('regenerates exactly the problems the warm start draws, counting distinct ones', async () => {
    const config = await resolveRunConfig({ config: { ...tinyRun, warmStart: { steps: 6, batchSize: 8 } } });
    const task = createTask(config.task.name);
    const heldOut = new Set(['ab<']);
    // What warmStart itself draws: the same fork and the same batches, step after step.
    const random = createRandom(config.seed).fork('warm-start');
    const drawn: string[] = [];
    for (let step = 0; step < 6; step++) {
      for (const example of sampleTrainingExamples(task, 8, random, heldOut)) drawn.push(example.prompt);
    }
    const distinct = [...new Set(drawn)];
    const result = warmStartProblems(config, task, heldOut, 5);
    expect(result.distinct).toBe(distinct.length);
    expect(result.examples.map((example) => example.prompt)).toEqual(distinct.slice(0, 5));
    expect(result.examples.every((example) => !heldOut.has(example.prompt))).toBe(true);
    expect(
      warmStartProblems({ ...config, warmStart: { ...config.warmStart, steps: 0 } }, task, heldOut, 5),
    ).toEqual({
      distinct: 0,
      examples: [],
    });
  });
});
