import type { FinishReason } from '@moerl/core';
import type { Task } from '../tasks/task.js';
import { readJsonLines, writeJsonLines } from './json-lines.js';
import type { RolloutBatch } from './rollout-batch.js';

/** One line of `samples.jsonl`: a rollout as text, whatever engine sampled it (token ids decoded here). */
export interface SampleRow {
  readonly step: number;
  readonly id: string;
  /** The prompt as the model saw it, decoded (special tokens dropped; a chat template's text kept). */
  readonly prompt: string;
  /** Everything after the prompt, decoded: the model's turns and, in a conversation, the observations. */
  readonly response: string;
  readonly reward: number;
  readonly correct: boolean;
  readonly finishReason: FinishReason;
  /** Model turns, for a conversation. */
  readonly turns?: number;
}

/** The first sample of each of the step's first `count` prompts, decoded with the task's tokenizer. */
export function sampleRows(task: Task, rollouts: RolloutBatch, step: number, count: number): SampleRow[] {
  const rows: SampleRow[] = [];
  const groups = new Set<string>();
  rollouts.trajectories.forEach((trajectory, index) => {
    const group = rollouts.groupIds[index]!;
    if (rows.length >= count || groups.has(group)) return;
    groups.add(group);
    const turns = rollouts.turns?.[index];
    rows.push({
      step,
      id: trajectory.id,
      prompt: task.tokenizer.decode(trajectory.promptIds),
      response: task.tokenizer.decode(trajectory.responseIds),
      reward: rollouts.rewards[index]!,
      correct: rollouts.correct[index]!,
      finishReason: trajectory.finishReason,
      ...(turns === undefined ? {} : { turns }),
    });
  });
  return rows;
}

export async function writeSamples(path: string, rows: readonly SampleRow[]): Promise<void> {
  await writeJsonLines(path, rows);
}

/** The rows of `samples.jsonl`; none when the file does not exist (a run started before it was written). */
export async function readSamples(path: string): Promise<SampleRow[]> {
  try {
    return await readJsonLines<SampleRow>(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}
