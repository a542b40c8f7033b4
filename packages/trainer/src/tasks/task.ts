import { MoerlError, type SeededRandom } from '@moerl/core';
import { createCharTokenizer, type Tokenizer } from './char-tokenizer.js';
import type { Environment } from './environment.js';

/** One problem: the prompt text and the reference answer (used for rewards and the warm start). */
export interface TaskExample {
  readonly prompt: string;
  readonly answer: string;
}

export interface TaskScore {
  /**
   * The reward of the response: the task's `reward` hook when it has one (0 for a response that never ended
   * or is malformed); otherwise 1 for a correct answer and the format reward, or 0, for a wrong one.
   */
  readonly reward: number;
  readonly correct: boolean;
}

export interface ScoreOptions {
  /** Reward for a well-formed but wrong answer (ends with `<eos>`, only answer characters). Default 0. */
  readonly formatReward?: number;
}

/** A verifiable task: a seeded problem generator and a reward function over a character tokenizer. */
export interface Task {
  readonly name: string;
  readonly description: string;
  readonly tokenizer: Tokenizer;
  /** Tokens of the longest prompt, including `<bos>`. */
  readonly maxPromptTokens: number;
  /** Tokens of the longest correct answer, including `<eos>`. */
  readonly maxAnswerTokens: number;
  /** How many distinct problems `generate` can produce, when known (to say how much a warm start saw). */
  readonly problemCount?: number;
  generate(random: SeededRandom): TaskExample;
  /** Scores a response given as token ids (what the engine sampled, up to and including `<eos>`). */
  score(example: TaskExample, responseIds: ArrayLike<number>, options?: ScoreOptions): TaskScore;
  /** Token ids of `<bos>` + prompt. */
  promptIds(example: TaskExample): number[];
  /** Token ids of answer + `<eos>`: the supervised target of the warm start. */
  answerIds(example: TaskExample): number[];
  /**
   * A multi-turn environment: RL rollouts become conversations (model turns and observations), rewarded by
   * the environment. Evaluation and the warm start still use the single-turn prompt and answer.
   */
  readonly environment?: Environment;
  /** Held-out problems of their own (a dataset's evaluation file); default: drawn from `generate`. */
  readonly evalExamples?: readonly TaskExample[];
}

/** What a user writes to add a task; `defineTask` fills in tokenization and scoring. */
export interface TaskDefinition {
  readonly name: string;
  readonly description: string;
  /** Every character a prompt or answer may contain. */
  readonly alphabet: string;
  /** Characters a well-formed answer consists of (for the format reward). Default: the whole alphabet. */
  readonly answerAlphabet?: string;
  readonly maxPromptLength: number;
  readonly maxAnswerLength: number;
  /** How many distinct problems `generate` can produce, when known. */
  readonly problemCount?: number;
  generate(random: SeededRandom): TaskExample;
  /**
   * Whether `response` (decoded text, without `<eos>`) solves `example`: what `accuracy` and evaluations
   * count, and the reward (1, else the format reward) when there is no `reward` hook. Default: exact match
   * with the answer.
   */
  isCorrect?(example: TaskExample, response: string): boolean;
  /**
   * A graded reward in [0, 1] for `response` (decoded text, without `<eos>`), used instead of the exact-match
   * reward and the format reward. Called only for responses that ended with `<eos>` and consist of answer
   * characters; others get 0. A non-finite or out-of-range value stops the run with an error naming the task
   * and the example.
   */
  reward?(example: TaskExample, response: string): number;
  /** Makes RL rollouts multi-turn conversations with this environment (see `Task.environment`). */
  readonly environment?: Environment;
}

export function defineTask(definition: TaskDefinition): Task {
  if (!/^[a-z][a-z0-9-]*$/.test(definition.name)) {
    throw new MoerlError(
      'CONFIG_INVALID',
      `A task name must be lower-case letters, digits and dashes, found "${definition.name}"`,
      { details: { field: 'name', found: definition.name } },
    );
  }
  const tokenizer = createCharTokenizer(definition.alphabet);
  const answerCharacters = new Set(definition.answerAlphabet ?? definition.alphabet);
  const isCorrect =
    definition.isCorrect ?? ((example: TaskExample, response: string) => response === example.answer);
  return {
    name: definition.name,
    description: definition.description,
    tokenizer,
    maxPromptTokens: definition.maxPromptLength + 1,
    maxAnswerTokens: definition.maxAnswerLength + 1,
    ...(definition.problemCount === undefined ? {} : { problemCount: definition.problemCount }),
    ...(definition.environment === undefined ? {} : { environment: definition.environment }),
    generate: definition.generate,
    promptIds: (example) => [tokenizer.bosId, ...tokenizer.encode(example.prompt)],
    answerIds: (example) => [...tokenizer.encode(example.answer), tokenizer.eosId],
    score(example, responseIds, options = {}) {
      const ids = Array.from(responseIds);
      const end = ids.indexOf(tokenizer.eosId);
      const terminated = end >= 0;
      const body = terminated ? ids.slice(0, end) : ids;
      const text = tokenizer.decode(body);
      // Special tokens inside the body (a stray <bos> or <pad>) make the answer malformed.
      const clean =
        text.length === body.length && [...text].every((character) => answerCharacters.has(character));
      const correct = terminated && clean && isCorrect(example, text);
      if (definition.reward !== undefined) {
        return { correct, reward: terminated && clean ? checkedReward(definition, example, text) : 0 };
      }
      const formatReward = options.formatReward ?? 0;
      return { correct, reward: correct ? 1 : terminated && clean && text.length > 0 ? formatReward : 0 };
    },
  };
}

function checkedReward(definition: TaskDefinition, example: TaskExample, response: string): number {
  const reward = definition.reward!(example, response);
  if (typeof reward !== 'number' || !Number.isFinite(reward) || reward < 0 || reward > 1) {
    throw new MoerlError(
      typeof reward === 'number' && !Number.isFinite(reward) ? 'NON_FINITE' : 'INVALID_ARGUMENT',
      `task "${definition.name}": reward() must return a number in [0, 1], found ${String(reward)} for the example with prompt ${JSON.stringify(example.prompt)} (answer ${JSON.stringify(example.answer)}) and response ${JSON.stringify(response)}`,
      {
        details: {
          task: definition.name,
          prompt: example.prompt,
          answer: example.answer,
          response,
          found: String(reward),
        },
      },
    );
  }
  return reward;
}
