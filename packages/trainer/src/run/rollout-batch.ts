import {
  type GenerateRequest,
  MoerlError,
  type RolloutEngine,
  type SamplingParams,
  type SeededRandom,
  type TrainingBatch,
  type Trajectory,
} from '@moerl/core';
import type { Task, TaskExample } from '../tasks/task.js';

/** The G samples of every prompt of one step, scored, in the flattened layout algos expects. */
export interface RolloutBatch {
  readonly trajectories: readonly Trajectory[];
  /** Index into the step's examples, per trajectory. */
  readonly exampleIndex: readonly number[];
  readonly groupIds: readonly string[];
  readonly rewards: Float64Array;
  readonly correct: readonly boolean[];
  /** Length trajectories + 1: response i owns tokens [offsets[i], offsets[i + 1]). */
  readonly sequenceOffsets: Int32Array;
  readonly engineLogprobs: Float32Array;
  /** Per response token, 1 where the model sampled it (multi-turn batches only; absent: every token). */
  readonly lossMask?: Uint8Array;
  /** Multi-turn batches: one message per conversation whose environment failed. */
  readonly errors?: readonly string[];
  /** Multi-turn batches: model turns per conversation, and the prompt tokens sent to the engine over all turns. */
  readonly turns?: readonly number[];
  /** Multi-turn batches: tool calls per conversation (turns the environment answered as a tool call). */
  readonly toolCalls?: readonly number[];
  readonly fedPromptTokens?: number;
  readonly promptTokens: number;
  readonly responseTokens: number;
}

export function responseOffsets(
  trajectories: readonly { readonly responseIds: ArrayLike<number> }[],
): Int32Array {
  const offsets = new Int32Array(trajectories.length + 1);
  trajectories.forEach((trajectory, index) => {
    offsets[index + 1] = offsets[index]! + trajectory.responseIds.length;
  });
  return offsets;
}

/** Samples `groupSize` responses per example and scores them. */
export async function collectRollouts(
  engine: RolloutEngine,
  task: Task,
  examples: readonly TaskExample[],
  options: {
    readonly groupSize: number;
    readonly sampling: SamplingParams;
    readonly random: SeededRandom;
    readonly formatReward: number;
    readonly idPrefix: string;
  },
): Promise<RolloutBatch> {
  const requests: GenerateRequest[] = [];
  const exampleIndex: number[] = [];
  examples.forEach((example, index) => {
    const promptIds = Int32Array.from(task.promptIds(example));
    for (let sample = 0; sample < options.groupSize; sample++) {
      requests.push({
        id: `${options.idPrefix}-p${index}-g${sample}`,
        groupId: `${options.idPrefix}-p${index}`,
        promptIds,
        samplingParams: { seed: options.random.nextUint32() },
      });
      exampleIndex.push(index);
    }
  });
  const trajectories = await engine.generate(requests, options.sampling);
  const rewards = new Float64Array(trajectories.length);
  const correct: boolean[] = [];
  trajectories.forEach((trajectory, index) => {
    const example = examples[exampleIndex[index]!]!;
    const score = task.score(example, trajectory.responseIds, {
      formatReward: options.formatReward,
    });
    if (typeof score.reward !== 'number' || !Number.isFinite(score.reward)) {
      throw new MoerlError(
        'NON_FINITE',
        `task "${task.name}": score() must return a finite reward, found ${String(score.reward)} for the example with prompt ${JSON.stringify(example.prompt)} (answer ${JSON.stringify(example.answer)}) and response ${JSON.stringify(task.tokenizer.decode(trajectory.responseIds))}`,
        { details: { task: task.name, prompt: example.prompt, found: String(score.reward) } },
      );
    }
    rewards[index] = score.reward;
    correct.push(score.correct);
  });
  const sequenceOffsets = responseOffsets(trajectories);
  const engineLogprobs = new Float32Array(sequenceOffsets[trajectories.length]!);
  trajectories.forEach((trajectory, index) => {
    engineLogprobs.set(trajectory.engineLogprobs, sequenceOffsets[index]!);
  });
  return {
    trajectories,
    exampleIndex,
    groupIds: requests.map((request) => request.groupId),
    rewards,
    correct,
    sequenceOffsets,
    engineLogprobs,
    promptTokens: trajectories.reduce((sum, trajectory) => sum + trajectory.promptIds.length, 0),
    responseTokens: sequenceOffsets[trajectories.length]!,
  };
}

/** The trainer's view of trajectories; `routing` picks which record (if any) travels with each one. */
export function trainingBatchOf(
  trajectories: readonly Trajectory[],
  routing: 'engine' | 'none' = 'engine',
): TrainingBatch {
  return {
    sequences: trajectories.map((trajectory) => ({
      promptIds: trajectory.promptIds,
      responseIds: trajectory.responseIds,
      ...(routing === 'engine' && trajectory.routing !== null ? { routing: trajectory.routing } : {}),
      // The version of the engine logprobs this sequence carries: replaying a route of another version
      // beside them is refused (ROUTING_STALE), never silent.
      weightVersion: trajectory.weightVersion,
    })),
  };
}
