import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandom, writeHfConfigFile, writeSafetensorsFile } from '@moerl/core';
import { createHttpRolloutEngine, type HttpRolloutEngine } from '@moerl/rollout-http';
import { createRandomWeights } from '@moerl/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conversationModel, conversationTask } from '../__fixtures__/conversation-model.js';
import { type ServedOnnxEngine, serveOnnxEngine } from '../serve/serve-onnx-engine.js';
import type { Environment } from '../tasks/environment.js';
import { collectConversations } from './conversation-rollouts.js';

const task = conversationTask;
const config = conversationModel;
const environment: Environment = {
  name: 'fixed-reply',
  maxTurns: 3,
  maxObservationTokens: 3,
  reset: () => undefined,
  step: (_state, _turn, { turn }) =>
    turn < 3 ? { observation: 'hgh', done: false } : { done: true, reward: 1 },
};
const sampling = { temperature: 1, topP: 1, topK: 0, maxNewTokens: 5, stopTokenIds: [], seed: 0 };

let directory = '';
let served: ServedOnnxEngine;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'moerl-multi-turn-http-'));
  await writeHfConfigFile(join(directory, 'config.json'), config);
  await writeSafetensorsFile(join(directory, 'model.safetensors'), createRandomWeights(config, 4));
  served = await serveOnnxEngine({ checkpointDir: directory, precision: 'fp32' });
});
afterAll(async () => {
  await served.close();
  await rm(directory, { recursive: true, force: true });
});

const client = (prefixReuse: boolean): HttpRolloutEngine =>
  createHttpRolloutEngine({ servers: [served.url], config, prefixReuse });

const conversations = (engine: HttpRolloutEngine, examples: { prompt: string; answer: string }[]) =>
  collectConversations(engine, task, environment, examples, {
    groupSize: 2,
    sampling,
    random: createRandom(8),
    idPrefix: 'h',
  });

describe('multi-turn rollouts over HTTP (moerl serve, SGLang protocol)', () => {
  it('fetch only the routing rows of each new turn, and assemble the same whole-conversation routing', async () => {
    const examples = [
      { prompt: 'abcd<', answer: 'dcba' },
      // Differs from the first in its middle: a cached prefix must stop at the difference, never shift.
      { prompt: 'abed<', answer: 'deba' },
    ];
    const reusing = client(true);
    const fetching = client(false);
    const reused = await conversations(reusing, examples);
    const fetched = await conversations(fetching, examples);
    reused.trajectories.forEach((trajectory, index) => {
      const other = fetched.trajectories[index]!;
      expect(trajectory.responseIds).toEqual(other.responseIds);
      expect(trajectory.lossMask).toEqual(other.lossMask);
      expect(trajectory.routing!.positions).toBe(
        trajectory.promptIds.length + trajectory.responseIds.length - 1,
      );
      expect(trajectory.routing!.experts).toEqual(other.routing!.experts);
    });
    // Later turns take their earlier rows from the client's cache: fewer routing bytes on the wire.
    expect(reusing.wireStats().reusedRoutingRows).toBeGreaterThan(0);
    expect(reusing.wireStats().routingChars).toBeLessThan(fetching.wireStats().routingChars);
    await reusing.dispose();
    await fetching.dispose();
  });
});
