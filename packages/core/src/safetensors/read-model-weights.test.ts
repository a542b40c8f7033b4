import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { float32Tensor, type NamedTensors } from '../tensors/tensor.js';
import { readModelWeights } from './read-model-weights.js';
import { writeSafetensorsFile } from './write-safetensors.js';

let directory = '';
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'moerl-shards-'));
});
afterAll(async () => rm(directory, { recursive: true, force: true }));

const tensor = (value: number) => float32Tensor([2], Float32Array.from([value, value + 0.5]));
const index = (map: Record<string, string>) =>
  JSON.stringify({ metadata: { total_size: 0 }, weight_map: map });

describe('readModelWeights', () => {
  it('reads a single model.safetensors, or every shard an index names, into one set of tensors', async () => {
    const single = join(directory, 'single');
    const all: NamedTensors = new Map([
      ['a.weight', tensor(1)],
      ['b.weight', tensor(2)],
      ['c.weight', tensor(3)],
    ]);
    await mkdir(single);
    await writeSafetensorsFile(join(single, 'model.safetensors'), all);
    expect([...(await readModelWeights(single)).keys()]).toEqual(['a.weight', 'b.weight', 'c.weight']);

    const sharded = join(directory, 'sharded');
    await mkdir(sharded);
    await writeSafetensorsFile(
      join(sharded, 'model-00001-of-00002.safetensors'),
      new Map([['a.weight', tensor(1)]]),
    );
    await writeSafetensorsFile(
      join(sharded, 'model-00002-of-00002.safetensors'),
      new Map([
        ['b.weight', tensor(2)],
        ['c.weight', tensor(3)],
      ]),
    );
    await writeFile(
      join(sharded, 'model.safetensors.index.json'),
      index({
        'a.weight': 'model-00001-of-00002.safetensors',
        'b.weight': 'model-00002-of-00002.safetensors',
        'c.weight': 'model-00002-of-00002.safetensors',
      }),
    );
    const weights = await readModelWeights(sharded);
    expect([...weights.keys()].sort()).toEqual(['a.weight', 'b.weight', 'c.weight']);
    expect(Array.from(weights.get('c.weight')!.data as Float32Array)).toEqual([3, 3.5]);
  });

  it('refuses an index that names a missing tensor, a stray one, or a path outside the directory', async () => {
    const bad = join(directory, 'bad');
    await mkdir(bad);
    await writeSafetensorsFile(
      join(bad, 'shard.safetensors'),
      new Map([
        ['a.weight', tensor(1)],
        ['z.weight', tensor(9)],
      ]),
    );
    const check = async (map: Record<string, string>, message: RegExp) => {
      await writeFile(join(bad, 'model.safetensors.index.json'), index(map));
      await expect(readModelWeights(bad)).rejects.toMatchObject({
        code: 'CHECKPOINT_INVALID',
        message: expect.stringMatching(message),
      });
    };
    await check(
      { 'a.weight': 'shard.safetensors', 'b.weight': 'shard.safetensors' },
      /tensor b\.weight is not in shard\.safetensors/,
    );
    await check(
      { 'a.weight': 'shard.safetensors' },
      /shard\.safetensors holds z\.weight, which the index does not give it/,
    );
    await check({ 'a.weight': '../elsewhere.safetensors' }, /not a \.safetensors file of this directory/);
    await writeFile(join(bad, 'model.safetensors.index.json'), '{oops');
    await expect(readModelWeights(bad)).rejects.toThrow(/not valid JSON/);
  });
});
