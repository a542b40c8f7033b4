import { mkdir, mkdtemp, realpath, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { MoerlError, type NamedTensors } from '@moerl/core';
import { createRandomWeights, createReferenceRolloutEngine, tinyMoeConfig } from '@moerl/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSglangServer, type SglangServer } from './sglang-server.js';

const config = tinyMoeConfig;
const engine = createReferenceRolloutEngine({ config, weights: createRandomWeights(config, 4) });
const generateBody = { input_ids: [3, 9, 14], sampling_params: { max_new_tokens: 3, sampling_seed: 7 } };
let server: SglangServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function post(path: string, body: unknown) {
  const response = await fetch(`${server!.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

describe('/update_weights_from_disk', () => {
  it('reads the checkpoint outside the engine queue: generation is answered while the disk read is pending', async () => {
    let entered!: () => void;
    const loading = new Promise<void>((resolve) => {
      entered = resolve;
    });
    let release!: (weights: NamedTensors) => void;
    const loaded = new Promise<NamedTensors>((resolve) => {
      release = resolve;
    });
    server = await createSglangServer({
      engine,
      loadWeights: () => {
        entered();
        return loaded;
      },
    });
    const update = post('/update_weights_from_disk', { model_path: '/slow/disk', weight_version: 4 });
    await loading;
    // Had the load run inside the queue, this would wait for `release` and the test would time out.
    const during = await post('/generate', generateBody);
    expect(during.status).toBe(200);
    expect((during.json.meta_info as { weight_version: string }).weight_version).toBe('0');
    release(createRandomWeights(config, 5));
    expect((await update).json.weight_version).toBe('4');
    const after = await post('/generate', generateBody);
    expect((after.json.meta_info as { weight_version: string }).weight_version).toBe('4');
    await engine.updateWeights(createRandomWeights(config, 4), 0);
  });

  it('answers 400 for a path that does not load, and nothing changes: same version, same samples', async () => {
    server = await createSglangServer({
      engine,
      loadWeights: async (path) => {
        throw new MoerlError('IO_ERROR', `no checkpoint at ${path}`);
      },
    });
    const before = await post('/generate', generateBody);
    const failed = await post('/update_weights_from_disk', { model_path: '/missing' });
    expect(failed.status).toBe(400);
    expect((failed.json.error as { message: string }).message).toMatch(/no checkpoint at \/missing/);
    const versionAnswer = await fetch(`${server.url}/get_weight_version`);
    expect(await versionAnswer.json()).toEqual({ weight_version: '0' });
    const after = await post('/generate', generateBody);
    expect(after.json.output_ids).toEqual(before.json.output_ids);
    expect(server.stats()).toMatchObject({ badRequests: 1, weightVersion: 0 });
  });

  it('admits an update before reading: with the pending limit reached, another update is 503 and reads nothing', async () => {
    const reads: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    server = await createSglangServer({
      engine,
      maxPendingRequests: 1,
      loadWeights: async (path) => {
        reads.push(path);
        await held;
        return createRandomWeights(config, 4);
      },
    });
    const first = post('/update_weights_from_disk', { model_path: '/first', weight_version: 0 });
    while (reads.length === 0) await new Promise((resolve) => setImmediate(resolve));
    const second = await post('/update_weights_from_disk', { model_path: '/second' });
    expect(second.status).toBe(503);
    // Generation too: the update being read holds the only place.
    expect((await post('/generate', generateBody)).status).toBe(503);
    expect(reads).toEqual(['/first']);
    expect(server.stats().rejectedBusy).toBe(2);
    release();
    expect((await first).status).toBe(200);
    expect(
      (await post('/update_weights_from_disk', { model_path: '/third', weight_version: 0 })).status,
    ).toBe(200);
    expect(reads).toEqual(['/first', '/third']);
  });
});

describe('weightsRoot', () => {
  let root: string;
  let outside: string;

  beforeAll(async () => {
    const base = await realpath(await mkdtemp(join(tmpdir(), 'moerl-weights-root-')));
    root = join(base, 'checkpoints');
    outside = join(base, 'elsewhere');
    await mkdir(join(root, 'step-1'), { recursive: true });
    await mkdir(outside);
    await mkdir(`${root}-sibling`);
    await symlink(outside, join(root, 'link-out'));
    await symlink(join(root, 'step-1'), join(base, 'link-in'));
  });

  afterAll(async () => {
    await rm(dirname(root), { recursive: true, force: true });
  });

  it('loads only paths that resolve inside it; others are 400 naming the root, and nothing is read', async () => {
    const reads: string[] = [];
    server = await createSglangServer({
      engine,
      weightsRoot: root,
      loadWeights: async (path) => {
        reads.push(path);
        return createRandomWeights(config, 4);
      },
    });
    const refused = [
      outside,
      join(root, '..', 'elsewhere'),
      join(root, 'link-out'),
      `${root}-sibling`,
      join(outside, 'missing'),
      join(root, 'missing'),
    ];
    for (const modelPath of refused) {
      const answer = await post('/update_weights_from_disk', { model_path: modelPath, weight_version: 0 });
      expect(answer.status, modelPath).toBe(400);
      expect((answer.json.error as { message: string }).message).toMatch(
        modelPath === join(root, 'missing')
          ? /model_path: cannot resolve/
          : `model_path must be inside ${root}`,
      );
    }
    expect(reads).toEqual([]);
    const inside = await post('/update_weights_from_disk', {
      model_path: join(dirname(root), 'link-in'),
      weight_version: 0,
    });
    expect(inside.status).toBe(200);
    // The resolved path is what gets read.
    expect(reads).toEqual([join(root, 'step-1')]);
  });

  it('refuses at start a root that does not exist', async () => {
    await expect(createSglangServer({ engine, weightsRoot: join(root, 'nope') })).rejects.toThrow(
      /weightsRoot must be an existing directory/,
    );
  });
});
