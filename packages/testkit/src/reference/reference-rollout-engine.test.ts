import { DEFAULT_SAMPLING_PARAMS, type GenerateRequest, MoerlError } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { tinyMoeConfig } from '../fixtures/tiny-config.js';
import { createRandomWeights } from '../weights/random-weights.js';
import { createReferencePolicyTrainer } from './reference-policy-trainer.js';
import { createReferenceRolloutEngine } from './reference-rollout-engine.js';

const config = tinyMoeConfig;
const engine = createReferenceRolloutEngine({ config, weights: createRandomWeights(config, 4) });
const params = { ...DEFAULT_SAMPLING_PARAMS, temperature: 1, maxNewTokens: 8, seed: 21 };
const request = (id: string, seedFork?: number): GenerateRequest => ({
  id,
  groupId: 'g',
  promptIds: Int32Array.of(3, 1, 4),
  ...(seedFork === undefined ? {} : { seedFork }),
});
const tokensOf = (ids: Int32Array) => [...ids].join();

describe('reference rollout engine seedFork', () => {
  it('claims the capability', () => {
    expect(engine.capabilities.seedFork).toBe(true);
  });

  it('samples a request with seedFork k like the same prompt at position k', async () => {
    // Four copies of one prompt: each position samples from its own fork, so they tell the forks apart.
    const byPosition = await engine.generate(
      [0, 1, 2, 3].map((index) => request(`p${index}`)),
      params,
    );
    expect(new Set(byPosition.map((trajectory) => tokensOf(trajectory.responseIds))).size).toBeGreaterThan(1);
    for (const fork of [0, 1, 2, 3]) {
      const [pinned] = await engine.generate([request('pinned', fork)], params);
      expect(tokensOf(pinned!.responseIds)).toBe(tokensOf(byPosition[fork]!.responseIds));
      expect(pinned!.engineLogprobs).toEqual(byPosition[fork]!.engineLogprobs);
      expect(pinned!.routing!.experts).toEqual(byPosition[fork]!.routing!.experts);
    }
  });

  it('rejects a negative or fractional seedFork, naming the field', async () => {
    for (const seedFork of [-1, 0.5]) {
      const run = engine.generate([request('bad', seedFork)], params);
      await expect(run).rejects.toSatisfy((error) => MoerlError.isInstance(error, 'INVALID_ARGUMENT'));
      await expect(engine.generate([request('bad', seedFork)], params)).rejects.toThrow(/seedFork/);
    }
  });
});

describe('reference rollout engine versions', () => {
  it('stamps the weight version on the routing it returns; a trainer refuses to pair it with another version', async () => {
    const weights = createRandomWeights(config, 4);
    const versioned = createReferenceRolloutEngine({ config, weights, weightVersion: 2 });
    const [before] = await versioned.generate([request('v2')], params);
    expect(before!.routing!.weightVersion).toBe(2);
    await versioned.updateWeights(weights, 3);
    const [after] = await versioned.generate([request('v3')], params);
    expect(after).toMatchObject({ weightVersion: 3, routing: { weightVersion: 3 } });

    const trainer = createReferencePolicyTrainer({ config, weights });
    const sequence = (trajectory: typeof before, weightVersion: number) => ({
      promptIds: trajectory!.promptIds,
      responseIds: trajectory!.responseIds,
      routing: trajectory!.routing!,
      weightVersion,
    });
    // Its own logprobs' version: replayed (a stale pair, v2 against a newer trainer, is normal off-policy RL).
    await expect(
      trainer.logprobs({ sequences: [sequence(before, 2)] }, { routing: 'replay' }),
    ).resolves.toBeDefined();
    const mismatched = trainer.logprobs({ sequences: [sequence(before, 3)] }, { routing: 'replay' });
    await expect(mismatched).rejects.toSatisfy((error) => MoerlError.isInstance(error, 'ROUTING_STALE'));
    await expect(
      trainer.logprobs({ sequences: [sequence(before, 3)] }, { routing: 'replay' }),
    ).rejects.toThrow(/version 2.*version 3/);
    await expect(
      trainer.logprobs({ sequences: [sequence(before, 3)] }, { routing: 'replay', allowStaleRouting: true }),
    ).resolves.toBeDefined();
  });

  it('a trainer without the partialReplay capability refuses it (UNSUPPORTED), never ignoring it', async () => {
    const weights = createRandomWeights(config, 4);
    const [trajectory] = await createReferenceRolloutEngine({ config, weights }).generate(
      [request('p')],
      params,
    );
    const trainer = createReferencePolicyTrainer({ config, weights });
    expect(trainer.capabilities.partialReplay).toBeUndefined();
    const sequences = [{ ...trajectory!, routing: trajectory!.routing! }];
    await expect(
      trainer.logprobs({ sequences }, { routing: 'replay', partialReplay: { minScoreRatio: 0.5 } }),
    ).rejects.toSatisfy((error) => MoerlError.isInstance(error, 'UNSUPPORTED'));
  });
});
