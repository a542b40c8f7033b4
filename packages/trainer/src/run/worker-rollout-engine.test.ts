import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CreateEngineOptions,
  DEFAULT_SAMPLING_PARAMS,
  type GenerateRequest,
  MoerlError,
  type RolloutEngine,
  resolveBackend,
} from '@moerl/core';
import { createRandomWeights, tinyMoeConfig } from '@moerl/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyRun } from '../__fixtures__/tiny-run.js';
import { withoutTimings } from '../__fixtures__/without-timings.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import type { RunConfigInput } from '../config/run-config-schema.js';
import { registerDefaultBackends } from './backends.js';
import { trainRun } from './train-run.js';
import { createWorkerRolloutEngine } from './worker-rollout-engine.js';

const options: CreateEngineOptions = {
  config: tinyMoeConfig,
  weights: createRandomWeights(tinyMoeConfig, 3),
  weightVersion: 2,
  precision: 'fp8',
  backendOptions: { prefixCache: true, activations: 'bf16' },
};
const requests: GenerateRequest[] = Array.from({ length: 6 }, (_, index) => ({
  id: `r${index}`,
  groupId: `g${index >> 1}`,
  promptIds: Int32Array.from({ length: 3 + index }, (_, position) => (position * 5 + index + 1) % 32),
}));
const sampling = { ...DEFAULT_SAMPLING_PARAMS, temperature: 1, seed: 7, maxNewTokens: 6 };

async function inProcessEngine(): Promise<RolloutEngine> {
  registerDefaultBackends();
  return (await resolveBackend('rollout', { preferred: 'onnx' })).backend.createEngine(options);
}

describe('a rollout engine in a worker thread', () => {
  let worker: RolloutEngine;
  let local: RolloutEngine;
  beforeAll(async () => {
    worker = await createWorkerRolloutEngine({ kind: 'backend', backend: 'onnx', plugins: [], options });
    local = await inProcessEngine();
  });
  afterAll(async () => {
    await worker.dispose();
    await local.dispose();
  });

  it('samples exactly what the same engine samples in the main thread, before and after a weight update', async () => {
    expect(worker.backendName).toBe(local.backendName);
    expect(worker.capabilities).toEqual(local.capabilities);
    expect(worker.config).toEqual(local.config);
    expect(await worker.generate(requests, sampling)).toEqual(await local.generate(requests, sampling));
    const next = createRandomWeights(tinyMoeConfig, 4);
    await worker.updateWeights(next, 3);
    await local.updateWeights(next, 3);
    const after = await worker.generate(requests, { ...sampling, seed: 8 });
    expect(after).toEqual(await local.generate(requests, { ...sampling, seed: 8 }));
    expect(after.every((trajectory) => trajectory.weightVersion === 3)).toBe(true);
    const { generateSeconds: _w, prefillSeconds: _wp, ...workerStats } = worker.stats();
    const { generateSeconds: _l, prefillSeconds: _lp, ...localStats } = local.stats();
    expect(workerStats).toEqual(localStats);
    expect(workerStats.requests).toBe(2 * requests.length);
  });

  it('keeps the error code of a failed call, and goes on serving', async () => {
    const bad: GenerateRequest[] = [{ id: 'bad', groupId: 'g', promptIds: Int32Array.from([1, 999]) }];
    const local = await inProcessEngine();
    const expected = await local.generate(bad, sampling).catch((error: unknown) => error);
    await local.dispose();
    expect(MoerlError.isInstance(expected)).toBe(true);
    const found = await worker.generate(bad, sampling).catch((error: unknown) => error);
    expect(MoerlError.isInstance(found, (expected as MoerlError).code)).toBe(true);
    expect((found as Error).message).toBe((expected as Error).message);
    expect(await worker.generate(requests.slice(0, 2), sampling)).toHaveLength(2);
  });

  it('an unknown backend fails at creation, naming it; a disposed engine refuses calls', async () => {
    await expect(
      createWorkerRolloutEngine({ kind: 'backend', backend: 'no-such-engine', plugins: [], options }),
    ).rejects.toThrow(/no-such-engine/);
    const engine = await createWorkerRolloutEngine({
      kind: 'backend',
      backend: 'onnx',
      plugins: [],
      options,
    });
    await engine.dispose();
    await engine.dispose(); // twice is harmless
    await expect(engine.generate(requests, sampling)).rejects.toThrow(/after dispose/);
  });
});

describe('rollout.worker in a run', () => {
  let root = '';
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'moerl-worker-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it.each([0, 1])('async %i: the same steps as with the engine in the main thread', async (async) => {
    const tiny: RunConfigInput = {
      ...tinyRun,
      warmStart: { steps: 2, batchSize: 8 },
      rollout: { ...tinyRun.rollout, async },
      train: { steps: 3, miniBatches: 1 },
      eval: { every: 0, size: 4 },
      checkpoint: { every: 0 },
      replay: 'R3',
      backends: { trainer: 'reference', engine: 'onnx' },
    };
    const run = async (worker: boolean) => {
      const config = await resolveRunConfig({ config: { ...tiny, rollout: { ...tiny.rollout, worker } } });
      const result = await trainRun({ config, directory: join(root, `a${async}-${worker}`) });
      return result.metrics.map(withoutTimings);
    };
    const inWorker = await run(true);
    expect(inWorker.map((row) => row.step)).toEqual([1, 2, 3]);
    expect(inWorker).toEqual(await run(false));
  });
});
