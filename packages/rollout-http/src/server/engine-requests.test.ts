import { createModelConfig, type RolloutEngine, type SamplingParams } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { stubEngine } from '../__fixtures__/stub-engine.js';
import { stopTokenIdsOf } from './engine-requests.js';
import { createSglangServer } from './sglang-server.js';

const modelConfig = (eosTokenId?: number) =>
  createModelConfig({
    vocabSize: 16,
    hiddenSize: 8,
    numLayers: 2,
    numAttentionHeads: 2,
    numKeyValueHeads: 2,
    numExperts: 4,
    topK: 2,
    moeIntermediateSize: 4,
    mlpOnlyLayers: [0],
    ...(eosTokenId === undefined ? {} : { eosTokenId }),
  });

/** The stop ids the engine was asked for, per request body, on SGLang's /generate and vLLM's /v1/completions. */
async function stopIdsSeen(eosTokenId: number | undefined, stop: Record<string, unknown>) {
  const seen: (readonly number[])[] = [];
  const stub = stubEngine(modelConfig(eosTokenId), [0, 1, 2, 3, 0, 1], 'stop');
  const engine: RolloutEngine = {
    ...stub,
    generate: (requests, params: SamplingParams) => {
      seen.push(params.stopTokenIds);
      return stub.generate(requests, params);
    },
  };
  const server = await createSglangServer({ engine });
  try {
    for (const [path, body] of [
      ['/generate', { input_ids: [1, 2], sampling_params: { max_new_tokens: 2, ...stop } }],
      ['/v1/completions', { prompt: [1, 2], max_tokens: 2, ...stop }],
    ] as const) {
      const response = await fetch(`${server.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.status, `${path}: ${await response.clone().text()}`).toBe(200);
    }
  } finally {
    await server.close();
  }
  return seen;
}

describe('stop tokens: the model’s EOS by default, as SGLang and vLLM', () => {
  it('stops at the model’s eos_token_id when the request gives no stop ids', async () => {
    expect(await stopIdsSeen(7, {})).toEqual([[7], [7]]);
  });

  it('adds it to the request’s stop ids, unless ignore_eos; a model without one stops where asked', async () => {
    expect(await stopIdsSeen(7, { stop_token_ids: [3] })).toEqual([
      [3, 7],
      [3, 7],
    ]);
    expect(await stopIdsSeen(7, { ignore_eos: true })).toEqual([[], []]);
    expect(await stopIdsSeen(undefined, {})).toEqual([[], []]);
  });

  it('stopTokenIdsOf does not repeat an EOS already asked for', () => {
    expect(stopTokenIdsOf([7, 3], false, 7)).toEqual([7, 3]);
    expect(stopTokenIdsOf(null, null, 7)).toEqual([7]);
  });
});
