import {
  DEFAULT_SAMPLING_PARAMS,
  type GenerateRequest,
  MoerlError,
  moeLayerIndices,
  type RoutingRecord,
  type SamplingParams,
  sliceRoutingRecord,
  type Trajectory,
} from '@moerl/core';
import { createRandomWeights, createReferenceRolloutEngine, tinyDenseAndSparseConfig } from '@moerl/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeVllmChoiceRouting } from '../protocols/vllm.js';
import { parseNpy } from '../wire/npy.js';
import { createSglangServer, type SglangServer, type Tokenizer } from './sglang-server.js';

const config = tinyDenseAndSparseConfig;
const engine = createReferenceRolloutEngine({
  config,
  weights: createRandomWeights(config, 3),
  weightVersion: 0,
});
/** Token t is spelled `t.`: tokens of different lengths, so text offsets are not just the index. */
const tokenizer: Tokenizer = {
  encode: (text) => text.split(' ').map(Number),
  decode: (ids) => ids.map((id) => `${id}.`).join(''),
};
let server: SglangServer;
let textServer: SglangServer;
let routingOffServer: SglangServer;

beforeAll(async () => {
  [server, textServer, routingOffServer] = await Promise.all([
    createSglangServer({ engine, onError: () => {} }),
    createSglangServer({ engine, tokenizer, modelName: 'tiny-moe' }),
    createSglangServer({ engine, returnRoutedExperts: false }),
  ]);
});

afterAll(async () => {
  await Promise.all([server.close(), textServer.close(), routingOffServer.close()]);
  await engine.dispose();
});

interface Choice {
  index: number;
  text: string;
  logprobs: { tokens: string[]; token_logprobs: number[]; text_offset: number[]; top_logprobs: null } | null;
  finish_reason: string;
  stop_reason: number | null;
  token_ids?: number[];
  prompt_token_ids?: number[];
  routed_experts: string | null;
}

interface Completion {
  id: string;
  object: string;
  created: number;
  model: string;
  choices: Choice[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

async function complete(body: unknown, on: SglangServer = server) {
  const response = await fetch(`${on.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return {
    status: response.status,
    json: (await response.json()) as Completion & { error?: { message: string } },
  };
}

/** The same call in-process: prompt-major requests, one engine call, the body's seed. */
function inProcess(prompts: number[][], n: number, params: Partial<SamplingParams>): Promise<Trajectory[]> {
  const requests: GenerateRequest[] = prompts.flatMap((prompt, p) =>
    Array.from({ length: n }, (_, s) => ({
      id: `d${p}-${s}`,
      groupId: `d${p}`,
      promptIds: Int32Array.from(prompt),
    })),
  );
  return engine.generate(requests, { ...DEFAULT_SAMPLING_PARAMS, ...params });
}

function routingOf(json: Completion, index: number, promptLength: number, promptStart = 0): RoutingRecord {
  return decodeVllmChoiceRouting(json, index, {
    requestId: `choice-${index}`,
    config,
    promptLength,
    generatedLength:
      json.choices[index]!.token_ids?.length ?? idsFromLogprobTokens(json.choices[index]!).length,
    promptStart,
  });
}

/** `token_id:<id>` logprob tokens back to ids (the client's way when `return_token_ids` is not sent). */
function idsFromLogprobTokens(choice: Choice): number[] {
  return choice.logprobs!.tokens.map((token) => {
    expect(token).toMatch(/^token_id:\d+$/);
    return Number(token.slice('token_id:'.length));
  });
}

function expectSameRouting(got: RoutingRecord, want: RoutingRecord): void {
  expect([got.positions, got.moeLayers, got.topK]).toEqual([want.positions, want.moeLayers, want.topK]);
  expect([...got.experts]).toEqual([...want.experts]);
}

describe('vLLM /v1/completions', () => {
  const prompt = [3, 9, 14, 2, 7];

  it('answers one prompt like vLLM: ids, logprobs and uint8 .npy routing equal to the engine run in-process', async () => {
    const { status, json } = await complete({
      model: 'whatever-name',
      prompt,
      max_tokens: 4,
      temperature: 0.7,
      seed: 5,
      logprobs: 0,
      return_token_ids: true,
    });
    expect(status).toBe(200);
    expect(json.id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    expect(json.object).toBe('text_completion');
    expect(json.model).toBe('whatever-name');
    expect(Number.isInteger(json.created)).toBe(true);
    const [direct] = await inProcess([prompt], 1, { temperature: 0.7, maxNewTokens: 4, seed: 5 });
    const choice = json.choices[0]!;
    expect(json.choices).toHaveLength(1);
    expect(choice.index).toBe(0);
    expect(choice.text).toBe('');
    expect(choice.token_ids).toEqual([...direct!.responseIds]);
    expect(choice.prompt_token_ids).toEqual(prompt);
    expect(choice.finish_reason).toBe('length');
    expect(choice.stop_reason).toBeNull();
    expect(choice.logprobs!.token_logprobs).toEqual([...direct!.engineLogprobs]);
    expect(choice.logprobs!.top_logprobs).toBeNull();
    // Without a tokenizer the only spelling of a token is its id.
    expect(choice.logprobs!.tokens).toEqual(choice.token_ids!.map((id) => `token_id:${id}`));
    expect(json.usage).toEqual({ prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 });

    // The raw array: (5 + 4 − 1, 6 hidden layers, top-2) uint8, dense layers (0, 2, 3, 4) all zero.
    const array = parseNpy(Buffer.from(choice.routed_experts!, 'base64'));
    expect(array.descr).toBe('|u1');
    expect(array.shape).toEqual([8, 6, 2]);
    const moeLayers = moeLayerIndices(config);
    expect(moeLayers).toEqual([1, 5]);
    for (let row = 0; row < 8; row++) {
      for (const layer of [0, 2, 3, 4]) {
        expect([...array.values.subarray((row * 6 + layer) * 2, (row * 6 + layer) * 2 + 2)]).toEqual([0, 0]);
      }
    }
    // The client's decoder drops the dense layers by index and gives the engine's RoutingRecord back.
    expectSameRouting(routingOf(json, 0, prompt.length), direct!.routing!);
  });

  it('orders a list of prompts × n prompt-major, each choice with its full routing, equal to one in-process call', async () => {
    const prompts = [prompt, [1, 2, 30]];
    const { status, json } = await complete({
      prompt: prompts,
      n: 3,
      max_tokens: 3,
      seed: 11,
      top_k: 4,
      top_p: 0.9,
      logprobs: 0,
      return_tokens_as_token_ids: true,
    });
    expect(status).toBe(200);
    const direct = await inProcess(prompts, 3, { maxNewTokens: 3, seed: 11, topK: 4, topP: 0.9 });
    expect(json.choices.map((choice) => choice.index)).toEqual([0, 1, 2, 3, 4, 5]);
    json.choices.forEach((choice, index) => {
      const want = direct[index]!;
      expect(choice.token_ids).toBeUndefined();
      expect(idsFromLogprobTokens(choice)).toEqual([...want.responseIds]);
      expect(choice.logprobs!.token_logprobs).toEqual([...want.engineLogprobs]);
      expectSameRouting(routingOf(json, index, want.promptIds.length), want.routing!);
    });
    // Samples of one prompt differ (forks of the seed), so the order is really checked.
    expect(new Set(direct.slice(0, 3).map((t) => t.responseIds.join(','))).size).toBeGreaterThan(1);
    // Prompt tokens count each prompt once, as vLLM does; completion tokens count every choice.
    expect(json.usage).toEqual({ prompt_tokens: 8, completion_tokens: 18, total_tokens: 26 });
  });

  it('skips the first routed_experts_prompt_start rows (not echoed); the decoder reads the rest', async () => {
    const body = { prompt, max_tokens: 3, seed: 2, return_token_ids: true };
    const full = (await complete(body)).json;
    const tail = (await complete({ ...body, routed_experts_prompt_start: 4 })).json;
    expect(tail.choices[0]!.token_ids).toEqual(full.choices[0]!.token_ids);
    expect(JSON.stringify(tail)).not.toMatch(/prompt_start/);
    expect(parseNpy(Buffer.from(tail.choices[0]!.routed_experts!, 'base64')).shape).toEqual([
      5 + 3 - 1 - 4,
      6,
      2,
    ]);
    const whole = routingOf(full, 0, 5);
    expectSameRouting(routingOf(tail, 0, 5, 4), sliceRoutingRecord(whole, 4));
    // The whole prompt may be skipped: only the generated tokens' rows are left.
    const none = (await complete({ ...body, routed_experts_prompt_start: 5 })).json;
    expectSameRouting(routingOf(none, 0, 5, 5), sliceRoutingRecord(whole, 5));
  });

  it('stops on stop_token_ids with finish_reason stop and stop_reason the matched id', async () => {
    const everyToken = Array.from({ length: config.vocabSize }, (_, id) => id);
    const { json } = await complete({
      prompt,
      max_tokens: 5,
      seed: 4,
      stop_token_ids: everyToken,
      return_token_ids: true,
    });
    const choice = json.choices[0]!;
    expect(choice.token_ids).toHaveLength(1);
    expect(choice.finish_reason).toBe('stop');
    expect(choice.stop_reason).toBe(choice.token_ids![0]);
    expect(routingOf(json, 0, 5).positions).toBe(5);
  });

  it('defaults like vLLM: max_tokens 16, temperature 1, model = the engine name', async () => {
    const { json } = await complete({ prompt: [4, 4], seed: 3, return_token_ids: true });
    const [direct] = await inProcess([[4, 4]], 1, { maxNewTokens: 16, temperature: 1, seed: 3 });
    expect(json.choices[0]!.token_ids).toEqual([...direct!.responseIds]);
    expect(json.model).toBe('reference');
    expect(json.choices[0]!.logprobs).toBeNull();
  });

  it('draws a fresh seed when the body sends none (or null), as vLLM does; a given seed repeats', async () => {
    const tokensOf = async (body: Record<string, unknown>) =>
      (
        await complete({ prompt: [4, 4], max_tokens: 12, return_token_ids: true, ...body })
      ).json.choices[0]!.token_ids!.join(',');
    const unseeded = await Promise.all([{}, {}, { seed: null }, { seed: null }].map(tokensOf));
    // Four 12-token samples at temperature 1 agreeing by chance is vanishingly unlikely; seed 0 for all would.
    expect(new Set(unseeded).size).toBeGreaterThan(1);
    const seeded = await Promise.all([{ seed: 0 }, { seed: 0 }].map(tokensOf));
    expect(seeded[0]).toBe(seeded[1]);
  });

  it('takes text prompts with a tokenizer and spells text and logprob tokens with it', async () => {
    const { status, json } = await complete(
      { prompt: ['3 9 14', '1 2'], max_tokens: 3, seed: 8, logprobs: 0, return_token_ids: true },
      textServer,
    );
    expect(status).toBe(200);
    const direct = await inProcess(
      [
        [3, 9, 14],
        [1, 2],
      ],
      1,
      { maxNewTokens: 3, seed: 8 },
    );
    expect(json.model).toBe('tiny-moe');
    json.choices.forEach((choice, index) => {
      const ids = [...direct[index]!.responseIds];
      expect(choice.token_ids).toEqual(ids);
      expect(choice.prompt_token_ids).toEqual([...direct[index]!.promptIds]);
      expect(choice.text).toBe(ids.map((id) => `${id}.`).join(''));
      expect(choice.logprobs!.tokens).toEqual(ids.map((id) => `${id}.`));
      // Offsets are the summed lengths of the tokens before: "3." is 2 characters, "12." 3.
      const lengths = ids.map((id) => String(id).length + 1);
      expect(choice.logprobs!.text_offset).toEqual(
        lengths.map((_, i) => lengths.slice(0, i).reduce((a, b) => a + b, 0)),
      );
    });
    // A tokenizer output that is no token id is refused like a bad id.
    const badText = await complete({ prompt: 'x 3' }, textServer);
    expect(badText.status).toBe(400);
    expect(badText.json.error!.message).toMatch(/prompt\[0\]: token id NaN is outside the vocabulary/);
    const asIds = (
      await complete(
        { prompt: '3 9', max_tokens: 2, logprobs: 0, return_tokens_as_token_ids: true },
        textServer,
      )
    ).json.choices[0]!;
    expect(asIds.logprobs!.tokens.every((token) => token.startsWith('token_id:'))).toBe(true);
  });

  it('sends routed_experts: null when the server runs without routing, and the decoder says ROUTING_MISSING', async () => {
    const { status, json } = await complete(
      { prompt: [prompt, [5, 6]], n: 2, max_tokens: 2 },
      routingOffServer,
    );
    expect(status).toBe(200);
    expect(json.choices.map((choice) => choice.routed_experts)).toEqual([null, null, null, null]);
    try {
      decodeVllmChoiceRouting(json, 0, {
        requestId: 'off',
        config,
        promptLength: 5,
        generatedLength: 2,
        promptStart: 0,
      });
      expect.unreachable();
    } catch (error) {
      expect(MoerlError.isInstance(error, 'ROUTING_MISSING')).toBe(true);
    }
  });

  it('lists the model on GET /v1/models', async () => {
    const models = (await (await fetch(`${textServer.url}/v1/models`)).json()) as {
      object: string;
      data: unknown[];
    };
    expect(models.object).toBe('list');
    expect(models.data).toEqual([expect.objectContaining({ id: 'tiny-moe', object: 'model' })]);
    expect((await fetch(`${server.url}/v1/models`, { method: 'POST', body: '{}' })).status).toBe(405);
    expect((await fetch(`${server.url}/v1/completions`)).status).toBe(405);
  });

  it('answers 400 naming the field for what it does not implement or cannot serve, and keeps serving', async () => {
    const cases: [unknown, RegExp][] = [
      ['{"prompt": [1,', /not valid JSON/],
      [{ prompt: [1, 2], echo: true }, /echo/],
      [{ prompt: [1, 2], best_of: 2 }, /best_of/],
      [{ prompt: [1, 2], logprobs: 5 }, /logprobs: only 0 .* found 5/],
      [{ prompt: [1, 2], stream: true }, /stream: .*never carry routed_experts/],
      [
        { prompt: [1, 2], routed_experts_prompt_start: 3 },
        /routed_experts_prompt_start: must be at most the prompt length 2, found 3/,
      ],
      [{ prompt: [[1, 2, 3], [4]], routed_experts_prompt_start: 2 }, /routed_experts_prompt_start/],
      [{ prompt: [1, 99] }, /prompt\[0\]: token id 99 is outside the vocabulary \[0, 32\)/],
      [{ prompt: [[1], [2, 32]] }, /prompt\[1\]: token id 32/],
      [{ prompt: 'hello' }, /prompt: this server has no tokenizer/],
      [{ prompt: [] }, /prompt/],
      [{ max_tokens: 2 }, /prompt/],
      [{ prompt: [1], max_tokens: 0 }, /max_tokens/],
      [{ prompt: [1], top_p: 0 }, /top_p/],
      [{ prompt: [1], n: 0 }, /n:/],
    ];
    const before = server.stats().badRequests;
    for (const [body, message] of cases) {
      const { status, json } = await complete(body);
      expect(status, JSON.stringify(body)).toBe(400);
      expect(json.error!.message).toMatch(message);
    }
    expect(server.stats().badRequests - before).toBe(cases.length);
    // Nulls mean "not given", as in vLLM's request model.
    const { status } = await complete({
      prompt: [1],
      max_tokens: 1,
      logprobs: null,
      stream: false,
      seed: null,
    });
    expect(status).toBe(200);
  });

  it('answers 503 with Retry-After while the engine queue is full, and serves again once it drains', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const gated = {
      ...engine,
      generate: async (...args: Parameters<typeof engine.generate>) => {
        await gate;
        return engine.generate(...args);
      },
    };
    const small = await createSglangServer({ engine: gated, maxPendingRequests: 1 });
    try {
      const first = complete({ prompt: [1, 2], max_tokens: 1 }, small);
      // Wait until the first call holds the queue's only place.
      while (small.stats().requests === 0) await new Promise((resolve) => setImmediate(resolve));
      const response = await fetch(`${small.url}/v1/completions`, {
        method: 'POST',
        body: JSON.stringify({ prompt: [1, 2], max_tokens: 1 }),
      });
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('1');
      expect(small.stats().rejectedBusy).toBe(1);
      release();
      expect((await first).status).toBe(200);
      expect((await complete({ prompt: [1, 2], max_tokens: 1 }, small)).status).toBe(200);
    } finally {
      await small.close();
    }
  });
});
