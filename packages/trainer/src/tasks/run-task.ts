import type { RunConfig } from '../config/run-config-schema.js';
import { loadHfTokenizer } from './hf-tokenizer.js';
import { loadJsonlTask } from './jsonl-task.js';
import type { Task } from './task.js';
import { createTask } from './task-registry.js';

/** The task a run config names: its JSONL dataset when it has one, else the registered task. */
export async function taskOf(config: RunConfig): Promise<Task> {
  const dataset = config.task.dataset;
  if (dataset === undefined) return createTask(config.task.name);
  return loadJsonlTask({
    path: dataset.path,
    reward: dataset.reward,
    ...(dataset.evalPath === undefined ? {} : { evalPath: dataset.evalPath }),
    ...(dataset.pattern === undefined ? {} : { pattern: dataset.pattern }),
    ...(dataset.maxAnswerTokens === undefined ? {} : { maxAnswerTokens: dataset.maxAnswerTokens }),
    ...(dataset.tokenizer === undefined ? {} : { tokenizer: await loadHfTokenizer(dataset.tokenizer) }),
  });
}
