import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MoerlError } from '@moerl/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFields, configJsonSchema } from './config-docs.js';
import { PRESETS } from './presets.js';
import { deepMerge, parseOverride, resolveRunConfig } from './resolve-run-config.js';

let directory = '';
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'moerl-config-'));
});
afterAll(async () => rm(directory, { recursive: true, force: true }));

async function problemsOf(run: () => Promise<unknown>): Promise<string[]> {
  try {
    await run();
  } catch (error) {
    expect(MoerlError.isInstance(error, 'CONFIG_INVALID')).toBe(true);
    return ((error as MoerlError).details as { problems?: string[] }).problems ?? [(error as Error).message];
  }
  throw new Error('expected a CONFIG_INVALID error');
}

describe('run config', () => {
  it('fills every default from an empty config', async () => {
    const config = await resolveRunConfig();
    expect(config.replay).toBe('free');
    expect(config.train.steps).toBe(30);
    expect(config.rollout.precision).toBe('bf16');
    expect(config.plugins).toEqual([]);
  });

  it('applies preset, then file, then overrides', async () => {
    const file = join(directory, 'run.yaml');
    await writeFile(file, 'train:\n  steps: 7\n  learningRate: 0.01\nreplay: R2\n');
    const config = await resolveRunConfig({
      preset: 'grpo-r3',
      file,
      overrides: ['train.steps=9', 'name=mine'],
    });
    expect(config.replay).toBe('R2');
    expect(config.train).toMatchObject({ steps: 9, learningRate: 0.01 });
    expect(config.name).toBe('mine');
    expect(config.algorithm.objective).toBe('grpo');
  });

  it('reads JSON files too', async () => {
    const file = join(directory, 'run.json');
    await writeFile(file, JSON.stringify({ algorithm: { objective: 'gspo' } }));
    expect((await resolveRunConfig({ file })).algorithm.objective).toBe('gspo');
  });

  it('lists every problem with its field path and the value found', async () => {
    const problems = await problemsOf(() =>
      resolveRunConfig({ overrides: ['train.steps=-1', 'train.stpes=3', 'replay=R4', 'rollout.topP=0'] }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^train\.steps: .*>=0.*found -1/),
        'train: unknown field "stpes"',
        expect.stringMatching(/^replay: .*"free"\|"R2"\|"R3".*found "R4"/),
        expect.stringMatching(/^rollout\.topP: /),
      ]),
    );
    expect(problems).toHaveLength(4);
  });

  it('names unknown presets and unreadable or malformed files', async () => {
    expect((await problemsOf(() => resolveRunConfig({ preset: 'ppo9000' })))[0]).toMatch(
      /Unknown preset "ppo9000".*demo/,
    );
    expect((await problemsOf(() => resolveRunConfig({ file: join(directory, 'missing.json') })))[0]).toMatch(
      /Cannot read config file/,
    );
    const bad = join(directory, 'bad.json');
    await writeFile(bad, '{"train": ');
    expect((await problemsOf(() => resolveRunConfig({ file: bad })))[0]).toMatch(/not valid \.json/);
    expect(() => parseOverride('steps')).toThrow(/key\.path=value/);
  });

  it('every preset is valid', async () => {
    for (const preset of Object.keys(PRESETS))
      await expect(resolveRunConfig({ preset })).resolves.toBeDefined();
  });

  it('documents every field with a description', () => {
    const fields = configFields();
    expect(fields.length).toBeGreaterThan(40);
    for (const field of fields) expect(field.description, field.path).not.toBe('');
    expect(fields.find((field) => field.path === 'train.steps')).toMatchObject({
      type: 'integer',
      defaultValue: 30,
    });
  });

  it('exports a JSON Schema that describes every key of a resolved config and refuses unknown ones', async () => {
    type Node = { properties?: Record<string, Node>; additionalProperties?: unknown; default?: unknown };
    const schema = configJsonSchema() as Node;
    const file = join(directory, 'with-schema.json');
    await writeFile(file, JSON.stringify({ $schema: './moerl.schema.json', train: { steps: 3 } }));
    const config = await resolveRunConfig({ preset: 'demo', file });
    expect(config.$schema).toBe('./moerl.schema.json');
    const walk = (value: unknown, node: Node, path: string) => {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return;
      expect(node.additionalProperties, path).toBe(false);
      for (const [key, child] of Object.entries(value)) {
        expect(node.properties?.[key], `${path}.${key}`).toBeDefined();
        walk(child, node.properties![key]!, `${path}.${key}`);
      }
    };
    walk(config, schema, 'config');
    expect(schema.properties?.rollout?.properties?.async?.default).toBe(0);
  });

  it('merges objects deeply and replaces arrays', () => {
    expect(deepMerge({ a: { b: 1, c: [1, 2] } }, { a: { c: [3] } })).toEqual({ a: { b: 1, c: [3] } });
    expect(parseOverride('a.b=[1,2]')).toEqual({ a: { b: [1, 2] } });
    expect(parseOverride('name=hello world')).toEqual({ name: 'hello world' });
  });

  it('takes every KL estimator @moerl/algos has (abs and the straight-through forms) and refuses others', async () => {
    for (const estimator of ['abs', 'low_var_kl+', 'k3'] as const) {
      const config = await resolveRunConfig({ config: { algorithm: { klEstimator: estimator } } });
      expect(config.algorithm.klEstimator).toBe(estimator);
    }
    await expect(
      resolveRunConfig({ config: { algorithm: { klEstimator: 'k4' as never } } }),
    ).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    });
  });
});
