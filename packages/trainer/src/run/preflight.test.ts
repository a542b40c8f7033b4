import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MoerlError } from '@moerl/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyRun } from '../__fixtures__/tiny-run.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { preflightRun, prepareRunDirectory, runConfigProblems } from './preflight.js';
import { runPaths } from './run-directory.js';
import { trainRun } from './train-run.js';

let root = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'moerl-preflight-'));
});
afterAll(async () => rm(root, { recursive: true, force: true }));

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

async function rejection(promise: Promise<unknown>): Promise<MoerlError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!MoerlError.isInstance(error)) throw new Error(`expected a MoerlError, got ${String(error)}`);
  return error;
}

describe('preflightRun', () => {
  it('refuses an unknown objective, naming the field and the registered ones', async () => {
    const config = await resolveRunConfig({ config: { ...tinyRun, algorithm: { objective: 'grp0' } } });
    const error = await rejection(preflightRun(config));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toMatch(
      /algorithm\.objective: expected a registered objective \(.*grpo.*\), found "grp0"/,
    );
  });

  it('runs the model’s cross-field checks', async () => {
    const config = await resolveRunConfig({ config: { ...tinyRun, model: { ...tinyRun.model, topK: 99 } } });
    const error = await rejection(preflightRun(config));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain('model.topK (99) must not exceed numExperts (4)');
  });

  it('refuses one sample per prompt and more mini-batches than responses', async () => {
    const single = await resolveRunConfig({
      config: { ...tinyRun, rollout: { promptsPerStep: 2, groupSize: 1 } },
    });
    expect(runConfigProblems(single)).toEqual([
      expect.stringMatching(/^rollout\.groupSize: advantage "grpo" is group-normalised .* found 1/),
    ]);
    const tooMany = await resolveRunConfig({
      config: { ...tinyRun, rollout: { promptsPerStep: 2, groupSize: 2 }, train: { miniBatches: 5 } },
    });
    expect(runConfigProblems(tooMany)).toEqual([
      'train.miniBatches: at most the 4 responses of a step (rollout.promptsPerStep × rollout.groupSize = 2 × 2), found 5',
    ]);
    expect((await rejection(preflightRun(tooMany))).code).toBe('CONFIG_INVALID');
    expect(runConfigProblems(await resolveRunConfig({ config: tinyRun }))).toEqual([]);
  });
});

describe('prepareRunDirectory', () => {
  it('refuses a directory holding a run unless resuming or forced; force removes the old run', async () => {
    const paths = runPaths(join(root, 'existing'));
    await mkdir(paths.checkpoints, { recursive: true });
    await writeFile(paths.config, '{}');
    await writeFile(join(paths.root, 'notes.txt'), 'mine');
    const error = await rejection(prepareRunDirectory(paths, {}));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toContain(
      `run directory ${paths.root} already holds a run (config.json, checkpoints)`,
    );
    await prepareRunDirectory(paths, { resume: true });
    expect(await exists(paths.config)).toBe(true);
    await prepareRunDirectory(paths, { force: true });
    expect(await readdir(paths.root)).toEqual(['notes.txt']);
    // Empty, missing and unrelated directories are fine.
    await prepareRunDirectory(paths, {});
    await prepareRunDirectory(runPaths(join(root, 'missing')), {});
  });

  it('names a regular file where the run directory, or a folder above it, should be', async () => {
    const file = join(root, 'a-file');
    await writeFile(file, '');
    for (const directory of [file, join(file, 'run')]) {
      const error = await rejection(prepareRunDirectory(runPaths(directory), {}));
      expect(error.code).toBe('IO_ERROR');
      expect(error.message).toBe(
        `run directory ${directory}: expected a directory, it or a folder above it is a regular file`,
      );
    }
  });

  it('removes temporaries that dead processes left mid-save, and keeps live ones', async () => {
    const paths = runPaths(join(root, 'crashed'));
    await mkdir(paths.checkpoints, { recursive: true });
    // A pid far above any default pid_max: no such process.
    const dead = 2 ** 30 + 7;
    await mkdir(join(paths.checkpoints, `.step-000002.${dead}.tmp`, 'trainer'), { recursive: true });
    await writeFile(join(paths.root, `.metrics.jsonl.${dead}.0a1b2c3d4e5f.tmp`), '');
    await mkdir(join(paths.checkpoints, `.step-000003.${process.pid}.tmp`));
    await writeFile(join(paths.checkpoints, 'latest.json'), '{}');
    await prepareRunDirectory(paths, { resume: true });
    expect((await readdir(paths.checkpoints)).sort()).toEqual([
      `.step-000003.${process.pid}.tmp`,
      'latest.json',
    ]);
    expect(await readdir(paths.root)).toEqual(['checkpoints']);
  });
});

describe('trainRun before touching the directory', () => {
  it('leaves an existing run alone when the new one is refused', async () => {
    const config = await resolveRunConfig({ config: tinyRun });
    const paths = runPaths(join(root, 'kept'));
    await mkdir(paths.root, { recursive: true });
    await writeFile(paths.config, '{"old":true}');
    await expect(trainRun({ config, directory: paths.root })).rejects.toThrow(/already holds a run/);
    expect(await readFile(paths.config, 'utf8')).toBe('{"old":true}');
  });

  it('checks the objective before creating the directory', async () => {
    const config = await resolveRunConfig({ config: { ...tinyRun, algorithm: { objective: 'nope' } } });
    const directory = join(root, 'never-made');
    await expect(trainRun({ config, directory })).rejects.toThrow(/algorithm\.objective/);
    expect(await exists(directory)).toBe(false);
  });
});
