import { createRandom, MoerlError } from '@moerl/core';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  createAdditionTask,
  createLongAdditionTask,
  createReverseTask,
  createSortDigitsTask,
} from './builtin-tasks.js';
import { createCharTokenizer } from './char-tokenizer.js';
import { sampleTrainingExamples } from './prompt-sampler.js';
import { defineTask } from './task.js';
import { createEvalSet, createTask, listTasks, registerTask } from './task-registry.js';

describe('character tokenizer', () => {
  it('round-trips text and reserves pad, bos and eos', () => {
    const tokenizer = createCharTokenizer('ab+');
    expect(tokenizer.vocabSize).toBe(6);
    expect(tokenizer.encode('a+b')).toEqual([3, 5, 4]);
    expect(tokenizer.decode([1, 3, 5, 4, 2, 0])).toBe('a+b');
  });

  it('names the character it cannot encode', () => {
    expect(() => createCharTokenizer('ab').encode('abc')).toThrow(/"c" at index 2/);
    expect(() => createCharTokenizer('aa')).toThrow(/distinct/);
  });
});

describe('built-in tasks', () => {
  it('addition-3: two 3-digit operands, the sum as the answer, spread over the whole space', () => {
    const task = createLongAdditionTask(3);
    expect(task.name).toBe('addition-3');
    const random = createRandom(4);
    const operands = new Set<number>();
    for (let index = 0; index < 2000; index++) {
      const { prompt, answer } = task.generate(random);
      const match = /^(\d{3})\+(\d{3})=$/.exec(prompt);
      expect(match, prompt).not.toBeNull();
      const a = Number(match![1]);
      const b = Number(match![2]);
      expect(a).toBeGreaterThanOrEqual(100);
      expect(b).toBeLessThanOrEqual(999);
      expect(answer).toBe(String(a + b));
      operands.add(a);
    }
    // 2000 draws from 900 values cover nearly all of them (expected ≈ 806 distinct).
    expect(operands.size).toBeGreaterThan(750);
    expect(task.maxPromptTokens).toBe(9);
    expect(task.maxAnswerTokens).toBe(5);
  });

  const cases = [
    // Independent solutions of each task, written from the problem text.
    {
      task: createAdditionTask(),
      solve: (prompt: string) =>
        String(
          prompt
            .slice(0, -1)
            .split('+')
            .reduce((sum, term) => sum + Number(term), 0),
        ),
    },
    {
      task: createSortDigitsTask(),
      solve: (prompt: string) =>
        [...prompt.slice(0, -1)]
          .map(Number)
          .sort((a, b) => a - b)
          .join(''),
    },
    {
      task: createReverseTask(),
      solve: (prompt: string) => prompt.slice(0, -1).split('').reverse().join(''),
    },
  ];

  for (const { task, solve } of cases) {
    it(`${task.name}: answers solve the prompt, fit the declared lengths and score 1`, () => {
      fc.assert(
        fc.property(fc.integer(), (seed) => {
          const example = task.generate(createRandom(seed));
          expect(example.answer).toBe(solve(example.prompt));
          const promptIds = task.promptIds(example);
          const answerIds = task.answerIds(example);
          expect(promptIds[0]).toBe(task.tokenizer.bosId);
          expect(promptIds.length).toBeLessThanOrEqual(task.maxPromptTokens);
          expect(answerIds.length).toBeLessThanOrEqual(task.maxAnswerTokens);
          expect(task.score(example, answerIds)).toEqual({ reward: 1, correct: true });
        }),
        { numRuns: 200 },
      );
    });
  }

  it('rewards exact answers only, with the optional format reward for well-formed wrong ones', () => {
    const task = createAdditionTask();
    const example = { prompt: '37+5=', answer: '42' };
    const ids = (text: string, eos = true) => [
      ...task.tokenizer.encode(text),
      ...(eos ? [task.tokenizer.eosId] : []),
    ];
    expect(task.score(example, ids('42'))).toEqual({ reward: 1, correct: true });
    expect(task.score(example, ids('43'), { formatReward: 0.1 })).toEqual({ reward: 0.1, correct: false });
    expect(task.score(example, ids('43'))).toEqual({ reward: 0, correct: false });
    // Unterminated, or with characters that cannot be an answer, earns nothing.
    expect(task.score(example, ids('42', false), { formatReward: 0.1 })).toEqual({
      reward: 0,
      correct: false,
    });
    expect(task.score(example, ids('4+2'), { formatReward: 0.1 })).toEqual({ reward: 0, correct: false });
    expect(task.score(example, [task.tokenizer.eosId], { formatReward: 0.1 })).toEqual({
      reward: 0,
      correct: false,
    });
    expect(task.score(example, [task.tokenizer.bosId, ...ids('42')])).toEqual({ reward: 0, correct: false });
    // Tokens after <eos> are ignored, as the engine stops there.
    expect(task.score(example, [...ids('42'), ...ids('9')])).toEqual({ reward: 1, correct: true });
  });
});

describe('task registry and held-out problems', () => {
  it('lists the built-ins and creates them by name', () => {
    expect(listTasks()).toEqual(expect.arrayContaining(['addition', 'reverse', 'sort-digits']));
    expect(createTask('reverse').name).toBe('reverse');
  });

  it('names the registered tasks when one is unknown', () => {
    try {
      createTask('division');
      expect.unreachable();
    } catch (error) {
      expect(MoerlError.isInstance(error, 'CONFIG_INVALID')).toBe(true);
      expect((error as Error).message).toMatch(/Unknown task "division".*addition/);
    }
  });

  it('adds a user task, which scores with its own correctness rule', () => {
    registerTask('parity', () =>
      defineTask({
        name: 'parity',
        description: 'is the number of ones even?',
        alphabet: '01?eo',
        answerAlphabet: 'eo',
        maxPromptLength: 5,
        maxAnswerLength: 1,
        generate: (random) => {
          const bits = Array.from({ length: 4 }, () => random.nextInt(2)).join('');
          return {
            prompt: `${bits}?`,
            answer: [...bits].filter((bit) => bit === '1').length % 2 === 0 ? 'e' : 'o',
          };
        },
      }),
    );
    const task = createTask('parity');
    const example = task.generate(createRandom(3));
    expect(task.score(example, task.answerIds(example)).correct).toBe(true);
    expect(() => registerTask('parity', () => task)).toThrow(/already registered/);
  });

  it('scores with a graded reward hook when given, isCorrect still deciding correctness', () => {
    const task = defineTask({
      name: 'graded-copy',
      description: 'copy the word; partial credit per matching character',
      alphabet: 'ab?',
      answerAlphabet: 'ab',
      maxPromptLength: 3,
      maxAnswerLength: 2,
      generate: () => ({ prompt: 'ab?', answer: 'ab' }),
      reward: (example, response) =>
        [...example.answer].filter((character, index) => response[index] === character).length /
        example.answer.length,
    });
    const example = task.generate(createRandom(1));
    const ids = (text: string, end = true) => [
      ...task.tokenizer.encode(text),
      ...(end ? [task.tokenizer.eosId] : []),
    ];
    expect(task.score(example, ids('ab'))).toEqual({ correct: true, reward: 1 });
    // The hook replaces the format reward: half right earns 0.5 whatever formatReward says.
    expect(task.score(example, ids('aa'), { formatReward: 0.1 })).toEqual({ correct: false, reward: 0.5 });
    // A response that never ended gets 0, as without the hook.
    expect(task.score(example, ids('ab', false))).toEqual({ correct: false, reward: 0 });
  });

  it('refuses a reward hook value that is not finite or not in [0, 1], naming the task and the example', () => {
    const withReward = (value: number) =>
      defineTask({
        name: 'bad-reward',
        description: 'returns a fixed reward',
        alphabet: 'a?',
        maxPromptLength: 2,
        maxAnswerLength: 1,
        generate: () => ({ prompt: 'a?', answer: 'a' }),
        reward: () => value,
      });
    for (const [value, code] of [
      [Number.NaN, 'NON_FINITE'],
      [Number.POSITIVE_INFINITY, 'NON_FINITE'],
      [1.5, 'INVALID_ARGUMENT'],
      [-0.1, 'INVALID_ARGUMENT'],
    ] as const) {
      const task = withReward(value);
      const example = task.generate(createRandom(1));
      expect(() => task.score(example, task.answerIds(example)), String(value)).toThrow(
        expect.objectContaining({
          code,
          message: expect.stringMatching(
            /task "bad-reward": reward\(\) must return a number in \[0, 1\].*prompt "a\?"/,
          ),
        }),
      );
    }
  });

  it('draws distinct eval problems, reproducibly, and never trains on them', () => {
    const task = createSortDigitsTask();
    const evalSet = createEvalSet(task, 50, 7);
    expect(new Set(evalSet.map((example) => example.prompt)).size).toBe(50);
    expect(createEvalSet(task, 50, 7)).toEqual(evalSet);
    const heldOut = new Set(evalSet.map((example) => example.prompt));
    const training = sampleTrainingExamples(task, 500, createRandom(1), heldOut);
    expect(training.filter((example) => heldOut.has(example.prompt))).toEqual([]);
  });

  it('stops with a clear error when every problem is held out', () => {
    const tiny = defineTask({
      name: 'tiny',
      description: 'one problem',
      alphabet: 'ab',
      maxPromptLength: 1,
      maxAnswerLength: 1,
      generate: () => ({ prompt: 'a', answer: 'b' }),
    });
    expect(() => sampleTrainingExamples(tiny, 1, createRandom(0), new Set(['a']))).toThrow(/held-out/);
  });
});

describe('the process-wide task registry', () => {
  it('is shared by a second copy of the module, as a plugin with its own install of @moerl/trainer has', async () => {
    const first = await import('./task-registry.js');
    vi.resetModules();
    const second = await import('./task-registry.js');
    expect(second.registerTask).not.toBe(first.registerTask); // really two module instances
    second.registerTask('second-copy', () => createReverseTask(), { replace: true });
    expect(first.listTasks()).toContain('second-copy');
    expect(first.listTasks()).toContain('addition');
    expect(first.createTask('second-copy').name).toBe('reverse');
    expect(Object.getOwnPropertySymbols(globalThis)).toContain(Symbol.for('moerl.tasks.v1'));
  });
});
