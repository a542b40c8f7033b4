import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_SAMPLING_PARAMS,
  moeLayerIndices,
  sequenceTokens,
  sliceRoutingRecord,
  writeHfConfigFile,
  writeSafetensorsFile,
} from '@moerl/core';
import {
  createRandomWeights,
  createReferenceModel,
  createReferenceRolloutEngine,
  tinyDenseAndSparseConfig,
} from '@moerl/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stubEngine } from '../__fixtures__/stub-engine.js';
import { loadCheckpointWeights } from './load-checkpoint-weights.js';
import { createSglangServer, type SglangServer } from './sglang-server.js';

const config = tinyDenseAndSparseConfig;
const weights = createRandomWeights(config, 1);
const engine = createReferenceRolloutEngine({ config, weights, weightVersion: 0 });
let server: SglangServer;
let checkpointRoot: string;

beforeAll(async () => {
  checkpointRoot = await mkdtemp(join(tmpdir(), 'moerl-serve-'));
  server = await createSglangServer({
    engine,
    loadWeights: loadCheckpointWeights,
    maxBodyBytes: 4096,
    onError: () => {},
  });
});

afterAll(async () => {
  await server.close();
  await engine.dispose();
  await rm(checkpointRoot, { recursive: true, force: true });
});

async function post(path: string, body: unknown) {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

/** Reads int32 little-endian base64 with DataView, independently of the package's decoders. */
function int32Rows(base64: string): number[] {
  const bytes = Buffer.from(base64, 'base64');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.byteLength / 4 }, (_, index) => view.getInt32(index * 4, true));
}

describe('SGLang-protocol server', () => {
  const prompt = [3, 9, 14, 2, 7];
  const request = {
    input_ids: prompt,
    sampling_params: { temperature: 0.7, max_new_tokens: 4, sampling_seed: 5 },
    return_logprob: true,
    return_routed_experts: true,
  };

  it('answers /generate like SGLang: ids, logprobs, weight version, int32 routing over all hidden layers', async () => {
    const { status, json } = await post('/generate', request);
    expect(status).toBe(200);
    const meta = json.meta_info as Record<string, unknown>;
    const outputIds = json.output_ids as number[];
    expect(outputIds.length).toBe(4);
    expect(meta.weight_version).toBe('0');
    expect(meta.finish_reason).toEqual({ type: 'length', length: 4 });
    expect((meta.output_token_logprobs as unknown[][]).map((entry) => entry[1])).toEqual(outputIds);
    // Same seed in-process gives the same tokens.
    const [direct] = await engine.generate([{ id: 'd', groupId: 'g', promptIds: Int32Array.from(prompt) }], {
      ...DEFAULT_SAMPLING_PARAMS,
      temperature: 0.7,
      maxNewTokens: 4,
      seed: 5,
    });
    expect(outputIds).toEqual([...direct!.responseIds]);
    // Routing: prompt + output − 1 rows × 6 hidden layers × top-2; dense layers zero; MoE layers match the
    // reference model's router on the full sequence.
    const rows = int32Rows(meta.routed_experts as string);
    expect(rows.length).toBe((5 + 4 - 1) * 6 * 2);
    const reference = createReferenceModel(config, weights);
    const want = sliceRoutingRecord(reference.forward(sequenceTokens(direct!)).routing, 0, 8);
    const moeLayers = moeLayerIndices(config);
    for (let row = 0; row < 8; row++) {
      for (let layer = 0; layer < 6; layer++) {
        const got = rows.slice((row * 6 + layer) * 2, (row * 6 + layer) * 2 + 2);
        const slot = moeLayers.indexOf(layer);
        const expected =
          slot === -1 ? [0, 0] : [...want.experts.slice((row * 2 + slot) * 2, (row * 2 + slot) * 2 + 2)];
        expect(got).toEqual(expected);
      }
    }
  });

  it('sends rows [N, end) for routed_experts_start_len and compact uint8 on request', async () => {
    const full = (await post('/generate', request)).json.meta_info as Record<string, unknown>;
    const tail = (await post('/generate', { ...request, routed_experts_start_len: 5 })).json
      .meta_info as Record<string, unknown>;
    expect(int32Rows(tail.routed_experts as string)).toEqual(
      int32Rows(full.routed_experts as string).slice(5 * 12),
    );
    const compact = (await post('/generate', { ...request, routed_experts_compact: true })).json
      .meta_info as Record<string, unknown>;
    expect(compact.routed_experts_dtype).toBe('uint8');
    expect([...Buffer.from(compact.routed_experts as string, 'base64')]).toEqual(
      int32Rows(full.routed_experts as string),
    );
  });

  it('returns an array for a batch or n > 1, prompt-major', async () => {
    const { json } = await post('/generate', {
      input_ids: [prompt, [1, 2]],
      sampling_params: { max_new_tokens: 2, n: 3, sampling_seed: 1 },
    });
    expect(Array.isArray(json)).toBe(true);
    const items = json as unknown as { meta_info: { prompt_tokens: number } }[];
    expect(items.map((item) => item.meta_info.prompt_tokens)).toEqual([5, 5, 5, 2, 2, 2]);
  });

  it('draws a fresh seed when sampling_seed is absent, as SGLang does; a given seed repeats', async () => {
    const tokensOf = async (samplingParams: Record<string, unknown>) =>
      (
        (
          await post('/generate', {
            input_ids: prompt,
            sampling_params: { max_new_tokens: 12, ...samplingParams },
          })
        ).json.output_ids as number[]
      ).join(',');
    const unseeded = await Promise.all([{}, {}, {}, {}].map(tokensOf));
    // Four 12-token samples at temperature 1 agreeing by chance is vanishingly unlikely; seed 0 for all would.
    expect(new Set(unseeded).size).toBeGreaterThan(1);
    const seeded = await Promise.all([{ sampling_seed: 0 }, { sampling_seed: 0 }].map(tokensOf));
    expect(seeded[0]).toBe(seeded[1]);
  });

  it('answers 400 with a message for bad JSON, unknown fields, bad ids and bad offsets, and keeps serving', async () => {
    const cases: [unknown, RegExp][] = [
      ['{"input_ids": [1,', /not valid JSON/],
      [{ input_ids: [1, 2], stream: true }, /stream/],
      [{ input_ids: [1, 2], sampling_params: { frequency_penalty: 1 } }, /sampling_params/],
      [{ input_ids: [1, 2], sampling_params: { max_new_tokens: 0 } }, /max_new_tokens/],
      [{ input_ids: [1, 99] }, /outside the vocabulary/],
      [{ text: 'hello' }, /no tokenizer/],
      [{}, /exactly one of text and input_ids/],
      [{ input_ids: [1, 2], routed_experts_start_len: 3 }, /routed_experts_start_len/],
    ];
    for (const [body, message] of cases) {
      const { status, json } = await post('/generate', body);
      expect(status).toBe(400);
      expect((json.error as { message: string }).message).toMatch(message);
    }
    expect((await post('/generate', { input_ids: [1], sampling_params: { max_new_tokens: 1 } })).status).toBe(
      200,
    );
  });

  it('answers 413 for an oversized body, 404 and 405 for wrong routes and methods', async () => {
    expect((await post('/generate', { input_ids: new Array(3000).fill(1) })).status).toBe(413);
    expect((await post('/nope', {})).status).toBe(404);
    expect((await fetch(`${server.url}/generate`)).status).toBe(405);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  it('loads a checkpoint through /update_weights_from_disk and bumps the version', async () => {
    const directory = join(checkpointRoot, 'step-1');
    const other = createRandomWeights(config, 2);
    await import('node:fs/promises').then((fs) => fs.mkdir(directory));
    await writeHfConfigFile(join(directory, 'config.json'), config);
    await writeSafetensorsFile(join(directory, 'model.safetensors'), other);
    const { status, json } = await post('/update_weights_from_disk', { model_path: directory });
    expect(status).toBe(200);
    expect(json.weight_version).toBe('1');
    const after = (await post('/generate', request)).json.meta_info as Record<string, unknown>;
    expect(after.weight_version).toBe('1');
    const missing = await post('/update_weights_from_disk', { model_path: join(checkpointRoot, 'none') });
    expect(missing.status).toBe(400);
    expect((await fetch(`${server.url}/get_weight_version`).then((r) => r.json())) as unknown).toEqual({
      weight_version: '1',
    });
  });
});

describe('compact routing above 256 experts', () => {
  it('sends uint16 named by routed_experts_dtype, and the client decoder reads ids above 255', async () => {
    const { createModelConfig } = await import('@moerl/core');
    const { decodeSglangGenerateItem } = await import('../protocols/sglang.js');
    const wide = createModelConfig({
      vocabSize: 16,
      hiddenSize: 8,
      numLayers: 2,
      numAttentionHeads: 2,
      numKeyValueHeads: 2,
      numExperts: 300,
      topK: 2,
      moeIntermediateSize: 4,
      mlpOnlyLayers: [0],
    });
    // A stub engine: 2 prompt + 2 output tokens → 3 routing rows on the one MoE layer, ids above 255.
    const ids = [299, 3, 256, 0, 7, 270];
    const stub = stubEngine(wide, ids, 'length');
    const wideServer = await createSglangServer({ engine: stub });
    try {
      const response = await fetch(`${wideServer.url}/generate`, {
        method: 'POST',
        body: JSON.stringify({
          input_ids: [1, 2],
          return_routed_experts: true,
          routed_experts_compact: true,
        }),
      });
      const json = (await response.json()) as { meta_info: Record<string, unknown> };
      expect(json.meta_info.routed_experts_dtype).toBe('uint16');
      // 3 rows × 2 hidden layers × top-2 × 2 bytes.
      expect(Buffer.from(json.meta_info.routed_experts as string, 'base64').length).toBe(24);
      const decoded = decodeSglangGenerateItem(json, {
        requestId: 'w',
        config: wide,
        promptLength: 2,
        startLen: 0,
        wantRouting: true,
        wantLogprobs: false,
      });
      expect(decoded.routing!.experts).toBeInstanceOf(Uint16Array);
      expect([...decoded.routing!.experts]).toEqual(ids);
    } finally {
      await wideServer.close();
    }
  });
});
