import { createRandom, MoerlError } from '@moerl/core';
import {
  createAdditionTask,
  createLongAdditionTask,
  createReverseTask,
  createSortDigitsTask,
} from './builtin-tasks.js';
import { createGuessNumberTask } from './guess-number-task.js';
import { createMultiplyToolTask } from './multiply-tool-task.js';
import { processWideTable } from './process-wide-table.js';
import type { Task, TaskExample } from './task.js';

export type TaskFactory = () => Task;

const BUILT_IN_TASKS: readonly (readonly [string, TaskFactory])[] = [
  ['addition', () => createAdditionTask()],
  ['addition-3', () => createLongAdditionTask(3)],
  ['addition-3-reversed', () => createLongAdditionTask(3, { reversed: true })],
  ['sort-digits', () => createSortDigitsTask()],
  ['reverse', () => createReverseTask()],
  ['reverse-8', () => createReverseTask(8)],
  ['sort-digits-8', () => createSortDigitsTask(8)],
  ['multiply-tool', () => createMultiplyToolTask()],
  ['guess-number', () => createGuessNumberTask()],
];

// Process-wide, so that a plugin's own copy of @moerl/trainer registers where the CLI's copy reads.
const taskFactories = processWideTable<TaskFactory>('moerl.tasks.v1', BUILT_IN_TASKS);

/** Adds a task by name (for `moerl train --task <name>` and configs). Replacing a name needs `replace`. */
export function registerTask(name: string, factory: TaskFactory, options: { replace?: boolean } = {}): void {
  const factories = taskFactories();
  if (factories.has(name) && options.replace !== true) {
    throw new MoerlError('CONFIG_INVALID', `A task named "${name}" is already registered`, {
      details: { field: 'task', found: name },
    });
  }
  factories.set(name, factory);
}

export function listTasks(): string[] {
  return [...taskFactories().keys()].sort();
}

export function createTask(name: string): Task {
  const factory = taskFactories().get(name);
  if (factory === undefined) {
    throw new MoerlError(
      'CONFIG_INVALID',
      `Unknown task "${name}"; registered tasks: ${listTasks().join(', ')}`,
      {
        details: { field: 'task', found: name, allowed: listTasks() },
      },
    );
  }
  return factory();
}

/**
 * The held-out evaluation set: `count` distinct problems from their own random stream. Training prompts
 * are drawn with `isHeldOut` excluded, so the two never overlap.
 */
export function createEvalSet(task: Task, count: number, seed: number): TaskExample[] {
  if (task.evalExamples !== undefined) return task.evalExamples.slice(0, count);
  const random = createRandom(seed).fork(`eval:${task.name}`);
  const seen = new Set<string>();
  const examples: TaskExample[] = [];
  for (let attempt = 0; examples.length < count && attempt < count * 50; attempt++) {
    const example = task.generate(random);
    if (seen.has(example.prompt)) continue;
    seen.add(example.prompt);
    examples.push(example);
  }
  return examples;
}
