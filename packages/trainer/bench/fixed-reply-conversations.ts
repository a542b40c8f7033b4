/**
 * The conversations the multi-turn benchmarks sample: 16 reverse-8 prompts, 4 turns each, a fixed 6-token
 * observation after every turn but the last, on a demo-sized model. The environment never ends a
 * conversation early, so every one runs all its turns.
 */
import { createRandom } from '@moerl/core';
import { demoShapedMoeConfig } from '@moerl/testkit';
import { createReverseTask } from '../src/tasks/builtin-tasks.js';
import type { Environment } from '../src/tasks/environment.js';

export const task = createReverseTask(8);
export const turns = 4;
export const observation = 'abcdef';
export const config = demoShapedMoeConfig(task.tokenizer.vocabSize, 128);
export const environment: Environment = {
  name: 'fixed-reply',
  maxTurns: turns,
  maxObservationTokens: observation.length,
  reset: () => undefined,
  step: (_state, _turn, { turn }) =>
    turn < turns ? { observation, done: false } : { done: true, reward: 1 },
};
const random = createRandom(5);
export const examples = Array.from({ length: 16 }, () => task.generate(random));
/** Sampled tokens per turn (no stop token, so every turn is full). */
export const sampling = { temperature: 1, topP: 1, topK: 0, maxNewTokens: 10, stopTokenIds: [], seed: 3 };
