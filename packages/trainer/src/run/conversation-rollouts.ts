import {
  type GenerateRequest,
  MoerlError,
  type RolloutEngine,
  type SamplingParams,
  type SeededRandom,
  type Trajectory,
} from '@moerl/core';
import type { Environment, EnvironmentTurn } from '../tasks/environment.js';
import type { Task, TaskExample } from '../tasks/task.js';
import { type RolloutBatch, responseOffsets } from './rollout-batch.js';

/** One conversation being sampled: what the model and the environment said so far. */
interface Conversation {
  readonly id: string;
  readonly groupId: string;
  readonly example: TaskExample;
  readonly promptIds: Int32Array;
  readonly response: number[];
  readonly logprobs: number[];
  readonly mask: number[];
  state: unknown;
  turns: number;
  toolCalls: number;
  /** The engine's trajectory of the latest turn: its routing covers the whole conversation so far. */
  last?: Trajectory;
  outcome?: { reward: number; correct: boolean; finishReason: Trajectory['finishReason']; error?: string };
}

const environmentError = (environment: Environment, turn: number, problem: string, cause?: unknown) =>
  new MoerlError('INVALID_ARGUMENT', `environment "${environment.name}", turn ${turn}: ${problem}`, {
    ...(cause === undefined ? {} : { cause }),
    details: { environment: environment.name, turn },
  });

/**
 * Samples `groupSize` conversations per example with `environment`: every turn, the engine continues each
 * open conversation from all it holds so far (its prefix cache serves what an earlier turn computed under
 * the same weights, so a turn prefills only the new observation), then the environment answers. The result
 * is the flattened batch algos expects, with a loss mask of 1 on sampled tokens and 0 on observations, and
 * the engine's routing of the whole conversation for R3. A conversation whose environment fails (throws,
 * an empty, oversize or untokenisable observation, a reward outside [0, 1]) ends with finish reason `error`,
 * reward 0 and an all-zero mask, and the error is reported; the rest of the batch goes on.
 */
export async function collectConversations(
  engine: RolloutEngine,
  task: Task,
  environment: Environment,
  examples: readonly TaskExample[],
  options: {
    readonly groupSize: number;
    readonly sampling: SamplingParams;
    readonly random: SeededRandom;
    readonly idPrefix: string;
  },
): Promise<RolloutBatch & { readonly lossMask: Uint8Array; readonly errors: readonly string[] }> {
  const conversations: Conversation[] = [];
  const exampleIndex: number[] = [];
  const errors: string[] = [];
  const fail = (conversation: Conversation, error: MoerlError) => {
    conversation.outcome = { reward: 0, correct: false, finishReason: 'error', error: error.message };
    errors.push(`${conversation.id}: ${error.message}`);
  };
  examples.forEach((example, index) => {
    for (let sample = 0; sample < options.groupSize; sample++) {
      const conversation: Conversation = {
        id: `${options.idPrefix}-p${index}-g${sample}`,
        groupId: `${options.idPrefix}-p${index}`,
        example,
        promptIds: Int32Array.from(task.promptIds(example)),
        response: [],
        logprobs: [],
        mask: [],
        state: undefined,
        turns: 0,
        toolCalls: 0,
      };
      try {
        conversation.state = environment.reset(example);
      } catch (error) {
        fail(
          conversation,
          environmentError(environment, 0, `reset() threw: ${(error as Error).message}`, error),
        );
      }
      conversations.push(conversation);
      exampleIndex.push(index);
    }
  });
  const maxPositions = engine.config.maxPositionEmbeddings;
  const perTurn = options.sampling.maxNewTokens;
  let active = conversations.filter((conversation) => conversation.outcome === undefined);
  let fedPromptTokens = 0;
  for (let turn = 1; turn <= environment.maxTurns && active.length > 0; turn++) {
    // A turn that could overrun the model's positions is not started: the conversation ends there.
    for (const conversation of active) {
      if (conversation.promptIds.length + conversation.response.length + perTurn > maxPositions) {
        conversation.outcome = { reward: 0, correct: false, finishReason: 'length' };
      }
    }
    active = active.filter((conversation) => conversation.outcome === undefined);
    const requests: GenerateRequest[] = active.map((conversation) => ({
      id: conversation.id,
      groupId: conversation.groupId,
      promptIds: Int32Array.from([...conversation.promptIds, ...conversation.response]),
      samplingParams: { seed: options.random.nextUint32() },
    }));
    for (const request of requests) fedPromptTokens += request.promptIds.length;
    const turns = requests.length === 0 ? [] : await engine.generate(requests, options.sampling);
    turns.forEach((trajectory, index) => {
      const conversation = active[index]!;
      conversation.last = trajectory;
      conversation.turns++;
      conversation.response.push(...trajectory.responseIds);
      conversation.logprobs.push(...trajectory.engineLogprobs);
      conversation.mask.push(...new Array<number>(trajectory.responseIds.length).fill(1));
      let answer: EnvironmentTurn;
      try {
        const ids = Array.from(trajectory.responseIds);
        const end = ids.indexOf(task.tokenizer.eosId);
        const text = task.tokenizer.decode(end >= 0 ? ids.slice(0, end) : ids);
        answer = environment.step(conversation.state, text, { turn, finishReason: trajectory.finishReason });
      } catch (error) {
        fail(
          conversation,
          environmentError(environment, turn, `step() threw: ${(error as Error).message}`, error),
        );
        return;
      }
      if (answer.done) {
        const reward = answer.reward ?? 0;
        if (typeof reward !== 'number' || !Number.isFinite(reward) || reward < 0 || reward > 1) {
          fail(
            conversation,
            environmentError(environment, turn, `reward must be a number in [0, 1], found ${String(reward)}`),
          );
          return;
        }
        conversation.outcome = {
          reward,
          correct: answer.correct === true,
          finishReason: trajectory.finishReason,
        };
        return;
      }
      if (turn === environment.maxTurns) {
        conversation.outcome = { reward: 0, correct: false, finishReason: 'length' };
        return;
      }
      if (typeof answer.observation !== 'string' || answer.observation.length === 0) {
        fail(
          conversation,
          environmentError(environment, turn, 'step() returned no observation for an open episode'),
        );
        return;
      }
      let observation: number[];
      try {
        observation = task.tokenizer.encode(answer.observation);
      } catch (error) {
        fail(
          conversation,
          environmentError(
            environment,
            turn,
            `observation cannot be tokenised: ${(error as Error).message}`,
            error,
          ),
        );
        return;
      }
      if (observation.length > environment.maxObservationTokens) {
        fail(
          conversation,
          environmentError(
            environment,
            turn,
            `observation of ${observation.length} tokens exceeds maxObservationTokens ${environment.maxObservationTokens}`,
          ),
        );
        return;
      }
      if (answer.toolCall === true) conversation.toolCalls++;
      conversation.response.push(...observation);
      conversation.logprobs.push(...new Array<number>(observation.length).fill(0));
      conversation.mask.push(...new Array<number>(observation.length).fill(0));
    });
    active = active.filter((conversation) => conversation.outcome === undefined);
  }

  const trajectories: Trajectory[] = conversations.map((conversation) => {
    const last = conversation.last;
    const outcome = conversation.outcome ?? { reward: 0, correct: false, finishReason: 'length' as const };
    if (last === undefined) {
      // Ended before its first turn (reset failed, or no room for one): nothing sampled, nothing to learn.
      return {
        id: conversation.id,
        groupId: conversation.groupId,
        promptIds: conversation.promptIds,
        responseIds: new Int32Array(0),
        engineLogprobs: new Float32Array(0),
        lossMask: new Uint8Array(0),
        routing: null,
        finishReason: outcome.finishReason,
        weightVersion: engine.stats().weightVersion,
        reward: 0,
      };
    }
    // The last turn's prompt held the whole conversation before it: its response ends the conversation
    // unless an observation followed (then the conversation ended on an error and the observation is cut).
    const length = last.promptIds.length - conversation.promptIds.length + last.responseIds.length;
    const failed = outcome.finishReason === 'error';
    return {
      id: conversation.id,
      groupId: conversation.groupId,
      promptIds: conversation.promptIds,
      responseIds: Int32Array.from(conversation.response.slice(0, length)),
      engineLogprobs: Float32Array.from(conversation.logprobs.slice(0, length)),
      lossMask: failed ? new Uint8Array(length) : Uint8Array.from(conversation.mask.slice(0, length)),
      routing: last.routing,
      finishReason: outcome.finishReason,
      weightVersion: last.weightVersion,
      reward: outcome.reward,
    };
  });

  const rewards = Float64Array.from(conversations, (conversation) => conversation.outcome?.reward ?? 0);
  const sequenceOffsets = responseOffsets(trajectories);
  const total = sequenceOffsets[trajectories.length]!;
  const engineLogprobs = new Float32Array(total);
  const lossMask = new Uint8Array(total);
  trajectories.forEach((trajectory, index) => {
    engineLogprobs.set(trajectory.engineLogprobs, sequenceOffsets[index]!);
    lossMask.set(trajectory.lossMask!, sequenceOffsets[index]!);
  });
  return {
    trajectories,
    exampleIndex,
    groupIds: conversations.map((conversation) => conversation.groupId),
    rewards,
    correct: conversations.map((conversation) => conversation.outcome?.correct === true),
    sequenceOffsets,
    engineLogprobs,
    lossMask,
    errors,
    turns: conversations.map((conversation) => conversation.turns),
    toolCalls: conversations.map((conversation) => conversation.toolCalls),
    fedPromptTokens,
    promptTokens: trajectories.reduce((sum, trajectory) => sum + trajectory.promptIds.length, 0),
    responseTokens: total,
  };
}
