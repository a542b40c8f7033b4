import { createOnnxRolloutEngine, type OnnxRolloutEngine } from '@moerl/backend-onnx';
import { DEFAULT_SAMPLING_PARAMS } from '@moerl/core';
import { createRandomWeights, tinyMoeConfig } from '@moerl/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpRolloutEngine } from '../client/http-rollout-engine.js';
import { decodeSglangGenerateItem } from '../protocols/sglang.js';
import { createSglangServer, type SglangServer } from './sglang-server.js';

const config = tinyMoeConfig;
const weights = createRandomWeights(config, 21);
let engine: OnnxRolloutEngine;
let served: SglangServer;

// The ONNX engine behind the protocol server, as `moerl serve` (@moerl/trainer) wires them.
beforeAll(async () => {
  engine = await createOnnxRolloutEngine({ config, weights });
  served = await createSglangServer({ engine, maxPendingRequests: 32 });
});

afterAll(async () => {
  await served.close();
  await engine.dispose();
});

const CLIENTS = 8;
const DURATION_MS = 1500;
const MAX_PER_CLIENT = 40;

/** Client c's i-th prompt: distinct per (c, i), so a response delivered to the wrong client shows. */
const promptOf = (client: number, iteration: number) => [
  1 + client,
  2 + (iteration % 29),
  (client + iteration + 3) % 32,
];

describe('moerl serve under load (loopback, bounded)', () => {
  it(`${CLIENTS} concurrent clients: merged into shared engine batches, no lost or mixed responses`, async () => {
    const stop = performance.now() + DURATION_MS;
    const latencies: number[] = [];
    const answered: {
      client: number;
      iteration: number;
      outputIds: number[];
      logprobs: number[];
      routing: number[];
    }[] = [];
    let sent = 0;
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, client) => {
        for (let iteration = 0; iteration < MAX_PER_CLIENT && performance.now() < stop; iteration++) {
          const rid = `c${client}-i${iteration}`;
          const input_ids = promptOf(client, iteration);
          const started = performance.now();
          sent++;
          const response = await fetch(`${served.url}/generate`, {
            method: 'POST',
            body: JSON.stringify({
              rid,
              input_ids,
              sampling_params: { max_new_tokens: 4, sampling_seed: client * 1000 + iteration },
              return_logprob: true,
              return_routed_experts: true,
            }),
          });
          const json = (await response.json()) as { meta_info: { id: string; prompt_tokens: number } };
          latencies.push(performance.now() - started);
          expect(response.status, JSON.stringify(json)).toBe(200);
          expect(json.meta_info.id).toBe(rid);
          expect(json.meta_info.prompt_tokens).toBe(input_ids.length);
          const decoded = decodeSglangGenerateItem(json, {
            requestId: rid,
            config,
            promptLength: input_ids.length,
            startLen: 0,
            wantRouting: true,
            wantLogprobs: true,
          });
          answered.push({
            client,
            iteration,
            outputIds: [...decoded.outputIds],
            logprobs: [...decoded.logprobs!],
            routing: [...decoded.routing!.experts],
          });
        }
      }),
    );
    expect(answered.length).toBe(sent);
    // Concurrent calls were merged into shared engine batches...
    const engineCalls = served.stats().engineCalls;
    expect(engineCalls).toBeLessThan(answered.length);
    // ...and still each client got exactly its own sample: every answer recomputed alone, in-process.
    const local = await createOnnxRolloutEngine({ config, weights });
    try {
      for (const entry of answered) {
        const [expected] = await local.generate(
          [{ id: 'x', groupId: 'x', promptIds: Int32Array.from(promptOf(entry.client, entry.iteration)) }],
          { ...DEFAULT_SAMPLING_PARAMS, maxNewTokens: 4, seed: entry.client * 1000 + entry.iteration },
        );
        expect(entry.outputIds).toEqual([...expected!.responseIds]);
        expect(entry.logprobs).toEqual([...expected!.engineLogprobs]);
        expect(entry.routing).toEqual([...expected!.routing!.experts]);
      }
    } finally {
      await local.dispose();
    }
    latencies.sort((a, b) => a - b);
    const seconds = DURATION_MS / 1000;
    console.log(
      `load: ${CLIENTS} clients, ${answered.length} responses in ~${seconds}s (${(answered.length / seconds).toFixed(0)} req/s) from ${engineCalls} engine calls, latency p50 ${latencies[Math.floor(latencies.length / 2)]!.toFixed(1)} ms, p95 ${latencies[Math.floor(latencies.length * 0.95)]!.toFixed(1)} ms`,
    );
  });

  it('over the pending limit the server answers 503 and the adapter retries until served', async () => {
    const engine = await createOnnxRolloutEngine({ config, weights });
    const small = await createSglangServer({ engine, maxPendingRequests: 1 });
    try {
      const adapter = createHttpRolloutEngine({
        servers: [small.url],
        config,
        maxConcurrentPerServer: 6,
        retries: 50,
        retryBackoffMs: 5,
        prefixReuse: false,
      });
      const requests = Array.from({ length: 6 }, (_, index) => ({
        id: `r${index}`,
        groupId: 'g',
        promptIds: Int32Array.of(1, 2 + index),
      }));
      const trajectories = await adapter.generate(requests, { ...DEFAULT_SAMPLING_PARAMS, maxNewTokens: 3 });
      expect(trajectories.map((trajectory) => trajectory.id)).toEqual(requests.map((request) => request.id));
      expect(small.stats().rejectedBusy).toBeGreaterThan(0);
      expect(adapter.wireStats().retries).toBe(small.stats().rejectedBusy);
    } finally {
      await small.close();
      await engine.dispose();
    }
  });
});
