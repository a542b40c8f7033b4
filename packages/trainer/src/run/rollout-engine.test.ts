import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSglangServer, loadCheckpointWeights, type SglangServer } from '@moerl/rollout-http';
import { createRandomWeights, createReferenceRolloutEngine } from '@moerl/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlowUpdateEngine } from '../__fixtures__/slow-update-engine.js';
import { tinyRun } from '../__fixtures__/tiny-run.js';
import { withoutTimings } from '../__fixtures__/without-timings.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import type { RunConfigInput } from '../config/run-config-schema.js';
import { createTask } from '../tasks/task-registry.js';
import { modelConfigFor } from './model-setup.js';
import { readSamples } from './sample-log.js';
import { trainRun } from './train-run.js';

/** The tiny run of train-run.test.ts, rolled out on two servers instead of in-process. */
const tiny: RunConfigInput = {
  ...tinyRun,
  seed: 5,
  warmStart: { steps: 2, batchSize: 8 },
  rollout: { ...tinyRun.rollout, precision: 'fp32' },
  train: { steps: 3, miniBatches: 1 },
  eval: { every: 0, size: 4 },
  checkpoint: { every: 0 },
  replay: 'R3',
};

let root = '';
const servers: SglangServer[] = [];
const engines: ReturnType<typeof createReferenceRolloutEngine>[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'moerl-remote-'));
  const config = await resolveRunConfig({ config: tiny });
  const modelConfig = modelConfigFor(config, createTask(config.task.name));
  // Servers start with unrelated weights at a later version: the run must replace both.
  for (let index = 0; index < 2; index++) {
    const engine = createReferenceRolloutEngine({
      config: modelConfig,
      weights: createRandomWeights(modelConfig, 100 + index),
      weightVersion: 40,
    });
    engines.push(engine);
    servers.push(await createSglangServer({ engine, loadWeights: loadCheckpointWeights }));
  }
});

afterAll(async () => {
  for (const server of servers) await server.close();
  for (const engine of engines) await engine.dispose();
  await rm(root, { recursive: true, force: true });
});

describe('rollout.servers', () => {
  it.each(['sglang', 'vllm'] as const)(
    'trains with rollouts from two %s-protocol servers, which load each new policy',
    async (protocol) => {
      const config = await resolveRunConfig({
        config: { ...tiny, rollout: { ...tiny.rollout, servers: servers.map((s) => s.url), protocol } },
      });
      const directory = join(root, protocol);
      const lines: string[] = [];
      const before = servers.map((server) => server.stats().requests);
      const result = await trainRun({ config, directory, events: { log: (line) => lines.push(line) } });
      expect(result.metrics.map((row) => row.step)).toEqual([1, 2, 3]);
      for (const row of result.metrics) {
        expect(Number.isFinite(row.loss)).toBe(true);
        expect(Number.isFinite(row.rewardMean)).toBe(true);
      }
      // Both servers sampled, and after the last step both serve the final policy.
      servers.forEach((server, index) => {
        expect(server.stats().requests).toBeGreaterThan(before[index]!);
      });
      for (const engine of engines) expect(engine.stats().weightVersion).toBe(3);
      expect(await readdir(join(directory, 'rollout-weights'))).toEqual(['v3']);
      expect(lines.some((line) => line.includes(`2 ${protocol} server(s)`))).toBe(true);
      // Token ids came over the wire; the run log has them as text, decoded by the task's tokenizer.
      const task = createTask(config.task.name);
      const samples = await readSamples(join(directory, 'samples.jsonl'));
      expect(samples).toHaveLength(3 * 2);
      for (const row of samples) {
        expect(row.prompt).toMatch(/^[a-h]{1,5}<$/);
        expect([...row.response].every((character) => task.tokenizer.alphabet.includes(character))).toBe(
          true,
        );
      }
    },
  );

  it('rollout.async 1: the step goes on while the servers take new weights, but no batch or evaluation reaches them before the update is done, and a failed update stops the run', async () => {
    const config = await resolveRunConfig({ config: tiny });
    const modelConfig = modelConfigFor(config, createTask(config.task.name));
    const serveSlowUpdates = (failFrom?: number) =>
      createSglangServer({
        engine: createSlowUpdateEngine(
          { config: modelConfig, weights: createRandomWeights(modelConfig, 7), weightVersion: 40 },
          failFrom,
        ),
        loadWeights: loadCheckpointWeights,
      });
    const runOn = async (server: SglangServer, name: string, worker = false) => {
      try {
        const asyncConfig = await resolveRunConfig({
          config: {
            ...tiny,
            rollout: { ...tiny.rollout, servers: [server.url], async: 1, worker },
            // Evaluation after every step: it must wait for the update as well.
            eval: { every: 1, size: 4 },
          },
        });
        return await trainRun({ config: asyncConfig, directory: join(root, name) });
      } finally {
        await server.close();
      }
    };
    // The engine refuses any generate call during an update, so a finished run is the check.
    const { metrics } = await runOn(await serveSlowUpdates(), 'slow-update');
    expect(metrics.map((row) => row.rolloutStaleness)).toEqual([0, 1, 1]);
    await expect(runOn(await serveSlowUpdates(2), 'failed-update')).rejects.toThrow(
      /update to version 2 failed/,
    );
    // The same with the HTTP client in a worker thread: the waits hold, and the failure crosses back.
    const inWorker = await runOn(await serveSlowUpdates(), 'slow-update-worker', true);
    expect(inWorker.metrics.map((row) => row.rolloutStaleness)).toEqual([0, 1, 1]);
    await expect(runOn(await serveSlowUpdates(2), 'failed-update-worker', true)).rejects.toThrow(
      /update to version 2 failed/,
    );
  });

  it('rollout.worker runs the HTTP client in a worker thread: the same run as from the main thread', async () => {
    const runWith = async (worker: boolean) => {
      const config = await resolveRunConfig({
        config: { ...tiny, rollout: { ...tiny.rollout, servers: servers.map((s) => s.url), worker } },
      });
      return trainRun({ config, directory: join(root, `client-worker-${worker}`) });
    };
    const main = await runWith(false);
    const worker = await runWith(true);
    expect(worker.metrics.map(withoutTimings)).toEqual(main.metrics.map(withoutTimings));
    expect(await readdir(join(root, 'client-worker-true', 'rollout-weights'))).toEqual(['v3']);
  });

  it('names a server that cannot be reached before any step', async () => {
    const config = await resolveRunConfig({
      config: { ...tiny, rollout: { ...tiny.rollout, servers: ['http://127.0.0.1:9'] } },
    });
    await expect(trainRun({ config, directory: join(root, 'unreachable') })).rejects.toThrow(
      /127\.0\.0\.1:9/,
    );
  });

  it('refuses a server list that is not http(s) URLs', async () => {
    await expect(
      resolveRunConfig({ config: { ...tiny, rollout: { ...tiny.rollout, servers: ['ftp://x'] } } }),
    ).rejects.toThrow(/rollout\.servers/);
  });
});
