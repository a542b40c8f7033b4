import { createOnnxRolloutEngine } from '@moerl/backend-onnx';
import { createTfjsPolicyTrainer } from '@moerl/backend-tfjs';
import { createRandom, type RolloutEngine, type SamplingParams } from '@moerl/core';
import { createRandomWeights } from '@moerl/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conversationModel, conversationTask } from '../__fixtures__/conversation-model.js';
import type { Environment } from '../tasks/environment.js';
import { collectConversations } from './conversation-rollouts.js';
import { trainingBatchOf } from './rollout-batch.js';

const task = conversationTask;
const config = conversationModel;
const weights = createRandomWeights(config, 7);
const sampling: SamplingParams = {
  temperature: 1,
  topP: 1,
  topK: 0,
  maxNewTokens: 6,
  stopTokenIds: [task.tokenizer.eosId],
  seed: 0,
};
const example = { prompt: 'abcd<', answer: 'dcba' };

/** Three model turns; after each of the first two the environment says a fixed word back. */
const echo: Environment<{ said: string[] }> = {
  name: 'echo',
  maxTurns: 3,
  maxObservationTokens: 4,
  reset: () => ({ said: [] }),
  step(state, turn, { turn: index }) {
    state.said.push(turn);
    return index < 3
      ? { observation: index === 1 ? 'hh' : 'gag', done: false }
      : { done: true, reward: 1, correct: true };
  },
};

let cached: RolloutEngine;
let uncached: RolloutEngine;
beforeAll(async () => {
  cached = await createOnnxRolloutEngine({ config, weights, precision: 'fp32', prefixCache: true });
  uncached = await createOnnxRolloutEngine({ config, weights, precision: 'fp32', prefixCache: false });
});
afterAll(async () => {
  await cached.dispose();
  await uncached.dispose();
});

const collect = (engine: RolloutEngine, environment: Environment, groupSize = 1) =>
  collectConversations(engine, task, environment, [example], {
    groupSize,
    sampling,
    random: createRandom(3),
    idPrefix: 't',
  });

describe('collectConversations', () => {
  it('interleaves model turns and observations, masks the observations, and prefills only what is new', async () => {
    const before = cached.stats().cachedPromptTokens;
    const batch = await collect(cached, echo);
    const [trajectory] = batch.trajectories;
    const mask = Array.from(trajectory!.lossMask!);
    // Turn, "hh", turn, "gag", turn: the observations are the zero runs, with their exact tokens.
    const runs = mask.join('').match(/1+|0+/g)!;
    expect(runs.map((run) => run[0])).toEqual(['1', '0', '1', '0', '1']);
    const ids = Array.from(trajectory!.responseIds);
    const t1 = runs[0]!.length;
    const t2 = runs[2]!.length;
    expect(ids.slice(t1, t1 + 2)).toEqual(task.tokenizer.encode('hh'));
    expect(ids.slice(t1 + 2 + t2, t1 + 2 + t2 + 3)).toEqual(task.tokenizer.encode('gag'));
    for (let t = 0; t < mask.length; t++) if (mask[t] === 0) expect(trajectory!.engineLogprobs[t]).toBe(0);
    expect(batch.rewards[0]).toBe(1);
    expect(batch.correct[0]).toBe(true);
    // Routing covers every fed position of the whole conversation, observations included.
    expect(trajectory!.routing!.positions).toBe(trajectory!.promptIds.length + ids.length - 1);
    // Turn 2 reuses prompt + turn 1 (its last token is fed again), turn 3 everything up to turn 2.
    const prompt = trajectory!.promptIds.length;
    expect(cached.stats().cachedPromptTokens - before).toBe(prompt + t1 - 1 + (prompt + t1 + 2 + t2 - 1));

    // The prefix cache changes nothing but the work: the same tokens, mask and routing, and logprobs up to
    // float rounding (a turn's prefill runs over fewer positions, so its sums group differently).
    const [plain] = (await collect(uncached, echo)).trajectories;
    expect(plain!.responseIds).toEqual(trajectory!.responseIds);
    plain!.engineLogprobs.forEach((value, t) => {
      expect(Math.abs(value - trajectory!.engineLogprobs[t]!)).toBeLessThan(1e-6);
    });
    expect(plain!.lossMask).toEqual(trajectory!.lossMask);
    expect(plain!.routing!.experts).toEqual(trajectory!.routing!.experts);
  });

  it('equals one forward over the final conversation: the trainer replays its routing to the engine’s logprobs', async () => {
    const batch = await collect(cached, echo, 3);
    const trainer = await createTfjsPolicyTrainer({
      config,
      weights,
      backendOptions: { backends: ['tfjs-wasm'], onWarning: () => {} },
    });
    try {
      const replayed = await trainer.logprobs(trainingBatchOf(batch.trajectories), { routing: 'replay' });
      const free = await trainer.logprobs(trainingBatchOf(batch.trajectories, 'none'), { routing: 'free' });
      let sampled = 0;
      for (let t = 0; t < batch.engineLogprobs.length; t++) {
        if (batch.lossMask![t] !== 1) continue;
        sampled++;
        expect(Math.abs(replayed.logprobs[t]! - batch.engineLogprobs[t]!)).toBeLessThan(1e-4);
        expect(Math.abs(free.logprobs[t]! - batch.engineLogprobs[t]!)).toBeLessThan(1e-4);
      }
      expect(sampled).toBeGreaterThan(0);
      // At fp32 the trainer, routing freely over the final conversation, picks what the engine recorded
      // turn by turn.
      batch.trajectories.forEach((trajectory, index) => {
        expect(free.routing![index]!.experts).toEqual(trajectory.routing!.experts);
      });
    } finally {
      await trainer.dispose();
    }
  });

  it('ends a conversation whose environment fails with finish reason error, out of the loss, and goes on', async () => {
    let calls = 0;
    const flaky: Environment = {
      ...echo,
      name: 'flaky',
      reset: () => ({ said: [] }),
      step(state, turn, info) {
        calls++;
        if (calls === 1) throw new Error('tool crashed');
        if (calls === 2) return { observation: 'xyz', done: false };
        if (calls === 3) return { observation: 'abcdefgh', done: false };
        return echo.step(state as { said: string[] }, turn, info);
      },
    };
    const batch = await collect(cached, flaky, 4);
    expect(batch.errors).toHaveLength(3);
    expect(batch.errors[0]).toMatch(/environment "flaky", turn 1: step\(\) threw: tool crashed/);
    expect(batch.errors[1]).toMatch(/turn 1: observation cannot be tokenised/);
    expect(batch.errors[2]).toMatch(/observation of 8 tokens exceeds maxObservationTokens 4/);
    const failed = batch.trajectories.filter((trajectory) => trajectory.finishReason === 'error');
    expect(failed).toHaveLength(3);
    for (const trajectory of failed) {
      expect(Array.from(trajectory.lossMask!).every((bit) => bit === 0)).toBe(true);
      expect(trajectory.routing!.positions).toBe(
        trajectory.promptIds.length + trajectory.responseIds.length - 1,
      );
    }
    const ok = batch.trajectories.find((trajectory) => trajectory.finishReason !== 'error')!;
    expect(ok.reward).toBe(1);
  });
});
