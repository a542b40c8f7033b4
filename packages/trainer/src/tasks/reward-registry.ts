import { MoerlError } from '@moerl/core';
import { exactReward, numericReward } from './answer-rewards.js';
import { processWideTable } from './process-wide-table.js';

/**
 * A reward over a decoded response and the reference answer of a dataset row: a number in [0, 1] (graded
 * rewards allowed); 1 counts as correct.
 */
export type AnswerReward = (response: string, answer: string) => number;

const BUILT_IN_REWARDS: readonly (readonly [string, AnswerReward])[] = [
  ['exact', exactReward],
  ['numeric', numericReward],
];

// Process-wide, as the task table, so that a plugin's own copy of @moerl/trainer registers where the run reads.
const rewardTable = processWideTable<AnswerReward>('moerl.rewards.v1', BUILT_IN_REWARDS);

/**
 * Adds a reward that `task.dataset.reward` can name (e.g. from a plugin module listed in `plugins`).
 * `regex` is reserved (it takes `task.dataset.pattern`); replacing a name needs `replace`.
 */
export function registerReward(
  name: string,
  reward: AnswerReward,
  options: { readonly replace?: boolean } = {},
): void {
  const table = rewardTable();
  if (name === 'regex' || (table.has(name) && options.replace !== true)) {
    throw new MoerlError('CONFIG_INVALID', `A reward named "${name}" is already registered`, {
      details: { field: 'task.dataset.reward', found: name },
    });
  }
  if (typeof reward !== 'function') {
    throw new MoerlError('INVALID_ARGUMENT', `registerReward("${name}"): the reward must be a function`);
  }
  table.set(name, reward);
}

export function listRewards(): string[] {
  return [...rewardTable().keys(), 'regex'].sort();
}

/** The reward registered as `name`; CONFIG_INVALID listing the registered ones when there is none. */
export function rewardByName(name: string): AnswerReward {
  const reward = rewardTable().get(name);
  if (reward === undefined) {
    throw new MoerlError(
      'CONFIG_INVALID',
      `Unknown reward "${name}"; registered rewards: ${listRewards().join(', ')} (a plugin adds one with registerReward)`,
      { details: { field: 'task.dataset.reward', found: name, allowed: listRewards() } },
    );
  }
  return reward;
}
