import { createModelConfig, createRoutingRecord, type ModelConfig, sliceRoutingRecord } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { stubEngine } from '../__fixtures__/stub-engine.js';
import { decodeVllmChoiceRouting } from '../protocols/vllm.js';
import { parseNpy } from '../wire/npy.js';
import { createSglangServer } from './sglang-server.js';
import { encodeVllmRoutedExperts, vllmRoutingDtype } from './vllm-routed-experts.js';

/** Two hidden layers, layer 0 dense, layer 1 MoE with `numExperts` experts, top-2. */
function configWith(numExperts: number): ModelConfig {
  return createModelConfig({
    vocabSize: 16,
    hiddenSize: 8,
    numLayers: 2,
    numAttentionHeads: 2,
    numKeyValueHeads: 2,
    numExperts,
    topK: 2,
    moeIntermediateSize: 4,
    mlpOnlyLayers: [0],
  });
}

describe('encodeVllmRoutedExperts', () => {
  it('chooses uint8 up to 256 experts and uint16 above, as vLLM does', () => {
    expect(vllmRoutingDtype(4)).toBe('|u1');
    expect(vllmRoutingDtype(256)).toBe('|u1');
    expect(vllmRoutingDtype(257)).toBe('<u2');
  });

  it.each([
    [256, [255, 3, 0, 254, 7, 128], '|u1'],
    [300, [299, 3, 256, 0, 7, 270], '<u2'],
  ] as const)(
    '%i experts: ids %j as %s, dense layer zero, rows from the prompt start',
    (experts, ids, dtype) => {
      const config = configWith(experts);
      const record = createRoutingRecord({ positions: 3, moeLayers: 1, topK: 2, numExperts: experts }, ids);
      const base64 = encodeVllmRoutedExperts(record, 1, config);
      const array = parseNpy(Buffer.from(base64, 'base64'));
      expect(array.descr).toBe(dtype);
      expect(array.shape).toEqual([2, 2, 2]);
      // Rows 1 and 2 of the record; hidden layer 0 (dense) is zeros.
      expect([...array.values]).toEqual([0, 0, ids[2], ids[3], 0, 0, ids[4], ids[5]]);
      const decoded = decodeVllmChoiceRouting({ choices: [{ routed_experts: base64 }] }, 0, {
        requestId: 'r',
        config,
        promptLength: 2,
        generatedLength: 2,
        promptStart: 1,
      });
      expect([...decoded.experts]).toEqual([...sliceRoutingRecord(record, 1).experts]);
    },
  );

  it('serves uint16 routing on /v1/completions for a model above 256 experts', async () => {
    const config = configWith(300);
    const ids = [299, 3, 256, 0, 7, 270];
    const server = await createSglangServer({ engine: stubEngine(config, ids, 'length') });
    try {
      const json = await completeOn(server.url);
      expect(parseNpy(Buffer.from(json.choices[0]!.routed_experts!, 'base64')).descr).toBe('<u2');
      const decoded = decodeVllmChoiceRouting(json, 0, {
        requestId: 'w',
        config,
        promptLength: 2,
        generatedLength: 2,
        promptStart: 0,
      });
      expect([...decoded.experts]).toEqual(ids);
    } finally {
      await server.close();
    }
  });

  it('sends null routing for an aborted sequence, as vLLM does', async () => {
    const config = configWith(8);
    const server = await createSglangServer({ engine: stubEngine(config, [1, 2, 3, 4, 5, 6], 'abort') });
    try {
      const choice = (await completeOn(server.url)).choices[0]!;
      expect(choice).toMatchObject({ finish_reason: 'abort', stop_reason: null, routed_experts: null });
    } finally {
      await server.close();
    }
  });
});

async function completeOn(url: string) {
  const response = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    body: JSON.stringify({ prompt: [1, 2], max_tokens: 2 }),
  });
  return (await response.json()) as {
    choices: { routed_experts: string | null; finish_reason: string; stop_reason: number | null }[];
  };
}
