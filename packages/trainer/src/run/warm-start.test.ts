import { createRandom, crossEntropyObjective } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { tinyRun } from '../__fixtures__/tiny-run.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { createReverseTask } from '../tasks/builtin-tasks.js';
import { createMultiplyToolTask } from '../tasks/multiply-tool-task.js';
import { sampleTrainingExamples } from '../tasks/prompt-sampler.js';
import { createTask } from '../tasks/task-registry.js';
import { maskedCrossEntropy, supervisedTarget, warmStartProblems } from './warm-start.js';

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

describe('warm start on demonstrated conversations', () => {
  it('imitates the model’s turns only: observations are in the sequence but out of the loss', () => {
    const task = createMultiplyToolTask();
    const example = { prompt: '12*11=', answer: '132' };
    // (12 + 11) % 10 = 3: a direct answer; (12 + 10) % 10 = 2: the calculator.
    expect(supervisedTarget(task, example)).toEqual({
      ids: [...task.tokenizer.encode('132'), task.tokenizer.eosId],
      mask: [1, 1, 1, 1],
    });
    const tool = supervisedTarget(task, { prompt: '12*10=', answer: '120' });
    const call = [...task.tokenizer.encode('c12*10'), task.tokenizer.eosId];
    const heard = task.tokenizer.encode('=120');
    const answer = [...task.tokenizer.encode('120'), task.tokenizer.eosId];
    expect(tool.ids).toEqual([...call, ...heard, ...answer]);
    expect(tool.mask).toEqual([...call.map(() => 1), ...heard.map(() => 0), ...answer.map(() => 1)]);
    // A task without an environment imitates its answer, with no mask.
    expect(supervisedTarget(createReverseTask(), { prompt: 'ab<', answer: 'ba' }).mask).toBeUndefined();
  });

  it('the masked cross-entropy averages over unmasked tokens and sends no gradient to the others', () => {
    const logprobs = Float32Array.from([-1, -2, -3, -4]);
    const result = maskedCrossEntropy([1, 0, 1, 0]).evaluate({
      logprobs,
      sequenceOffsets: Int32Array.from([0, 4]),
    });
    expect(result.loss).toBeCloseTo(2, 12);
    expect(Array.from(result.gradient)).toEqual([-0.5, 0, -0.5, 0]);
    // All ones: plain cross-entropy.
    const plain = crossEntropyObjective().evaluate({ logprobs, sequenceOffsets: Int32Array.from([0, 4]) });
    const ones = maskedCrossEntropy([1, 1, 1, 1]).evaluate({
      logprobs,
      sequenceOffsets: Int32Array.from([0, 4]),
    });
    expect(ones.loss).toBeCloseTo(plain.loss, 12);
    expect(Array.from(ones.gradient)).toEqual(Array.from(plain.gradient));
  });
});
