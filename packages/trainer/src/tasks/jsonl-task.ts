import { readFile } from 'node:fs/promises';
import { MoerlError, type SeededRandom } from '@moerl/core';
import { regexReward } from './answer-rewards.js';
import { createCharTokenizer, type Tokenizer } from './char-tokenizer.js';
import type { ChatMessage, HfTokenizer } from './hf-tokenizer.js';
import { type AnswerReward, rewardByName } from './reward-registry.js';
import type { Task, TaskExample } from './task.js';

export interface JsonlTaskOptions {
  /** Default `jsonl`. */
  readonly name?: string;
  /** One JSON object a line: `{"prompt": …, "answer": …}` or `{"messages": [{role, content}, …], "answer": …}`. */
  readonly path: string;
  /**
   * Held-out problems from their own file. Without it the evaluation set is drawn from `path` by the run's
   * seed, and training never samples those problems.
   */
  readonly evalPath?: string;
  /**
   * `exact` (trimmed), `numeric` (GSM8K `####`, `\boxed{}`, else the last number), `regex`, the name of a
   * reward added with `registerReward`, or a function; graded values in [0, 1] allowed. Default `exact`.
   */
  readonly reward?: string | AnswerReward;
  /** For `regex`: matched against the response; a capture group must equal the answer. */
  readonly pattern?: string;
  /** A Hugging Face tokenizer (and its chat template); default a character tokenizer over the files' text. */
  readonly tokenizer?: HfTokenizer;
  /** Longest response in tokens (default: the longest reference answer). */
  readonly maxAnswerTokens?: number;
}

interface Row {
  readonly prompt?: string;
  readonly messages?: readonly ChatMessage[];
  readonly answer: string;
}

async function readRows(path: string): Promise<Row[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new MoerlError('IO_ERROR', `Cannot read dataset ${path}: ${(error as Error).message}`, {
      cause: error,
      details: { path },
    });
  }
  const rows: Row[] = [];
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return;
    const where = `${path}:${index + 1}`;
    const bad = (problem: string) =>
      new MoerlError('CONFIG_INVALID', `dataset ${where}: ${problem}`, {
        details: { path, line: index + 1 },
      });
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(line) as Record<string, unknown>;
    } catch (error) {
      throw bad(`not JSON (${(error as Error).message})`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('not a JSON object');
    const answer = value.answer;
    if (typeof answer !== 'string' && typeof answer !== 'number')
      throw bad('"answer" must be a string or number');
    const messages = value.messages;
    if (messages !== undefined) {
      const valid =
        Array.isArray(messages) &&
        messages.length > 0 &&
        messages.every(
          (message) =>
            message !== null &&
            typeof message === 'object' &&
            typeof (message as ChatMessage).role === 'string' &&
            typeof (message as ChatMessage).content === 'string',
        );
      if (!valid) throw bad('"messages" must be a non-empty array of {role, content} strings');
      rows.push({ messages: messages as ChatMessage[], answer: String(answer) });
    } else if (typeof value.prompt === 'string' && value.prompt.length > 0) {
      rows.push({ prompt: value.prompt, answer: String(answer) });
    } else {
      throw bad('needs "prompt" (a non-empty string) or "messages"');
    }
  });
  if (rows.length === 0) {
    throw new MoerlError('CONFIG_INVALID', `dataset ${path} holds no problems`, { details: { path } });
  }
  return rows;
}

/**
 * A task over a JSONL dataset: problems drawn uniformly from `path`, scored by the chosen reward on the decoded
 * response (up to `<eos>`; a response that never ended scores 0). With a Hugging Face tokenizer that has a
 * chat template, prompts are rendered with it (a bare `prompt` as one user message) and end where the
 * assistant's reply starts.
 */
export async function loadJsonlTask(options: JsonlTaskOptions): Promise<Task> {
  const rows = await readRows(options.path);
  const evalRows = options.evalPath === undefined ? undefined : await readRows(options.evalPath);
  const hf = options.tokenizer;
  const hasTemplate = hf?.hasChatTemplate === true;
  const render = (row: Row): string => {
    const messages = row.messages ?? [{ role: 'user', content: row.prompt! }];
    if (hasTemplate) return hf!.applyChatTemplate(messages, { addGenerationPrompt: true });
    return row.messages === undefined
      ? row.prompt!
      : row.messages.map((message) => `${message.role}: ${message.content}`).join('\n');
  };
  const toExample = (row: Row): TaskExample => ({ prompt: render(row), answer: row.answer });
  const examples = rows.map(toExample);
  const evalExamples = evalRows?.map(toExample);
  const all = [...examples, ...(evalExamples ?? [])];
  const tokenizer: Tokenizer =
    hf ??
    createCharTokenizer(
      [...new Set(all.flatMap((example) => [...example.prompt, ...example.answer]))].sort().join(''),
    );
  const promptIds = (example: TaskExample) =>
    hf === undefined
      ? [tokenizer.bosId, ...tokenizer.encode(example.prompt)]
      : tokenizer.encode(example.prompt);
  const answerIds = (example: TaskExample) => [...tokenizer.encode(example.answer), tokenizer.eosId];
  const mode = options.reward ?? 'exact';
  if (mode === 'regex' && options.pattern === undefined) {
    throw new MoerlError('CONFIG_INVALID', 'reward "regex" needs a pattern', {
      details: { field: 'pattern' },
    });
  }
  const pattern = options.pattern === undefined ? undefined : new RegExp(options.pattern);
  const rewardName = typeof mode === 'function' ? mode.name || 'custom' : mode;
  const chosen: AnswerReward =
    typeof mode === 'function'
      ? mode
      : mode === 'regex'
        ? (response, answer) => regexReward(pattern!, response, answer)
        : rewardByName(mode);
  const reward = (response: string, answer: string) => {
    const value = chosen(response, answer);
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
      throw new MoerlError(
        typeof value === 'number' && !Number.isFinite(value) ? 'NON_FINITE' : 'INVALID_ARGUMENT',
        `reward "${rewardName}" must return a number in [0, 1], found ${String(value)} for the response ${JSON.stringify(response)} (answer ${JSON.stringify(answer)})`,
        { details: { field: 'task.dataset.reward', reward: rewardName, response, answer } },
      );
    }
    return value;
  };
  const name = options.name ?? 'jsonl';
  return {
    name,
    description: `${examples.length} problems from ${options.path}, ${rewardName} reward`,
    tokenizer,
    maxPromptTokens: Math.max(...all.map((example) => promptIds(example).length)),
    maxAnswerTokens: options.maxAnswerTokens ?? Math.max(...all.map((example) => answerIds(example).length)),
    problemCount: examples.length,
    ...(evalExamples === undefined ? {} : { evalExamples }),
    generate: (random: SeededRandom) => examples[random.nextInt(examples.length)]!,
    promptIds,
    answerIds,
    score(example, responseIds) {
      const ids = Array.from(responseIds);
      const end = ids.indexOf(tokenizer.eosId);
      if (end < 0) return { reward: 0, correct: false };
      const value = reward(tokenizer.decode(ids.slice(0, end)), example.answer);
      return { reward: value, correct: value === 1 };
    },
  };
}
