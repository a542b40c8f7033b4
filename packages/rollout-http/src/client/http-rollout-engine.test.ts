import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOnnxRolloutEngine } from '@moerl/backend-onnx';
import {
  DEFAULT_SAMPLING_PARAMS,
  type GenerateRequest,
  MoerlError,
  type RolloutEngine,
  type SamplingParams,
} from '@moerl/core';
import { createRandomWeights, tinyDenseAndSparseConfig } from '@moerl/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSglangServer, type SglangServer } from '../server/sglang-server.js';
import { checkpointWeightSync } from './checkpoint-weight-sync.js';
import { createHttpRolloutEngine } from './http-rollout-engine.js';
import { planCalls, requestSeed } from './plan-calls.js';

const config = tinyDenseAndSparseConfig; // MoE layers [1, 5] among 6: dense layers must be dropped by index
const weights = createRandomWeights(config, 4);
const engines: RolloutEngine[] = [];
const servers: SglangServer[] = [];
let inProcess: RolloutEngine;
let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'moerl-http-'));
  for (let index = 0; index < 2; index++) {
    const engine = await createOnnxRolloutEngine({ config, weights });
    engines.push(engine);
    servers.push(await createSglangServer({ engine, onError: () => {} }));
  }
  inProcess = await createOnnxRolloutEngine({ config, weights });
});

afterAll(async () => {
  for (const server of servers) await server.close();
  for (const engine of engines) await engine.dispose();
  await inProcess.dispose();
  await rm(scratch, { recursive: true, force: true });
});

const params: SamplingParams = { ...DEFAULT_SAMPLING_PARAMS, temperature: 1, maxNewTokens: 6, seed: 7 };
const prompts = [
  Int32Array.of(3, 9, 14, 2, 7),
  Int32Array.of(1, 30, 12),
  Int32Array.of(8, 8, 5, 20, 11, 6, 2),
];
/** A GRPO batch: 3 prompts × 4 samples. */
const grpo: GenerateRequest[] = prompts.flatMap((promptIds, prompt) =>
  Array.from({ length: 4 }, (_, sample) => ({
    id: `q${prompt}-s${sample}`,
    groupId: `q${prompt}`,
    promptIds,
  })),
);

const codeOf = async (run: () => Promise<unknown>) => {
  try {
    await run();
  } catch (error) {
    return MoerlError.isInstance(error) ? error.code : String(error);
  }
  return 'no error';
};

describe('HTTP rollout engine against two real servers', () => {
  it('a GRPO rollout over HTTP equals the in-process engine for the same seeds, routing included', async () => {
    const adapter = createHttpRolloutEngine({
      servers: servers.map((server) => server.url),
      config,
      maxConcurrentPerServer: 2,
    });
    const remote = await adapter.generate(grpo, params);
    // Each planned HTTP call run in-process with its seed is the oracle.
    for (const call of planCalls(grpo, params)) {
      const local = await inProcess.generate(
        call.indices.map((index) => grpo[index]!),
        { ...call.params, seed: call.seed },
      );
      call.indices.forEach((index, sample) => {
        const request = grpo[index]!;
        const trajectory = remote[index]!;
        const expected = local[sample]!;
        expect(trajectory.id).toBe(request.id);
        expect([...trajectory.responseIds]).toEqual([...expected.responseIds]);
        expect([...trajectory.engineLogprobs]).toEqual([...expected.engineLogprobs]);
        expect(trajectory.routing!.moeLayers).toBe(2);
        expect(trajectory.routing!.positions).toBe(
          request.promptIds.length + trajectory.responseIds.length - 1,
        );
        expect([...trajectory.routing!.experts]).toEqual([...expected.routing!.experts]);
      });
    }
    // Both servers served; each group's prompt routing crossed the wire once (3 followers reuse it).
    expect(new Set(remote.map((trajectory) => trajectory.server)).size).toBe(2);
    const reused = remote.map((trajectory) => trajectory.reusedRoutingRows);
    expect(reused).toEqual(grpo.map((request, index) => (index % 4 === 0 ? 0 : request.promptIds.length)));
    expect(adapter.stats().cachedPromptTokens).toBe(3 * (5 + 3 + 7));
    expect(adapter.serverWeightVersions()).toEqual({ [servers[0]!.url]: '0', [servers[1]!.url]: '0' });
  });

  it('a later turn that extends an earlier sequence asks only for rows past it (router-cache prefix)', async () => {
    const bodies: Record<string, unknown>[] = [];
    const recording: typeof fetch = (input, init) => {
      bodies.push(JSON.parse(String(init?.body)) as Record<string, unknown>);
      return fetch(input, init);
    };
    const adapter = createHttpRolloutEngine({ servers: [servers[0]!.url], config, fetch: recording });
    const [turn1] = await adapter.generate(grpo.slice(0, 1), params);
    // The next turn: the whole first conversation plus a new user message.
    const promptIds = Int32Array.from([...turn1!.promptIds, ...turn1!.responseIds, 17, 4]);
    const turn2Request: GenerateRequest = { id: 'turn2', groupId: 'turn2', promptIds };
    const [turn2] = await adapter.generate([turn2Request], params);
    const fedBefore = turn1!.promptIds.length + turn1!.responseIds.length - 1;
    expect(bodies.map((body) => body.routed_experts_start_len)).toEqual([undefined, fedBefore]);
    expect(turn2!.reusedRoutingRows).toBe(fedBefore);
    const [expected] = await inProcess.generate([turn2Request], {
      ...params,
      seed: requestSeed(params.seed, 0),
    });
    expect([...turn2!.responseIds]).toEqual([...expected!.responseIds]);
    expect([...turn2!.routing!.experts]).toEqual([...expected!.routing!.experts]);
    expect(adapter.prefixCacheStats().hitTokens).toBe(fedBefore);
    // A third turn reuses everything of the second, which was itself served from a cached prefix.
    const turn3Ids = Int32Array.from([...promptIds, ...turn2!.responseIds, 9]);
    const [turn3] = await adapter.generate([{ id: 'turn3', groupId: 'turn3', promptIds: turn3Ids }], params);
    expect(turn3!.reusedRoutingRows).toBe(promptIds.length + turn2!.responseIds.length - 1);
  });

  it('the same GRPO rollout over the vLLM protocol (/v1/completions) gives the same trajectories', async () => {
    const bodies: Record<string, unknown>[] = [];
    const recording: typeof fetch = (input, init) => {
      bodies.push(JSON.parse(String(init?.body)) as Record<string, unknown>);
      return fetch(input, init);
    };
    const sglang = createHttpRolloutEngine({ servers: servers.map((server) => server.url), config });
    const vllm = createHttpRolloutEngine({
      servers: servers.map((server) => server.url),
      config,
      protocol: 'vllm',
      fetch: recording,
    });
    expect(vllm.backendName).toBe('http-vllm');
    const expected = await sglang.generate(grpo, params);
    const remote = await vllm.generate(grpo, params);
    remote.forEach((trajectory, index) => {
      expect([...trajectory.responseIds]).toEqual([...expected[index]!.responseIds]);
      expect([...trajectory.engineLogprobs]).toEqual([...expected[index]!.engineLogprobs]);
      expect([...trajectory.routing!.experts]).toEqual([...expected[index]!.routing!.experts]);
      expect(trajectory.reusedRoutingRows).toBe(expected[index]!.reusedRoutingRows);
      // vLLM names no weight version: trajectories carry the client's.
      expect(trajectory.serverWeightVersion).toBeUndefined();
    });
    // Followers asked for rows past the prompt with vLLM's field.
    expect(new Set(bodies.map((body) => body.routed_experts_prompt_start))).toEqual(
      new Set([undefined, ...prompts.map((prompt) => prompt.length)]),
    );
    // After an out-of-band weight load, setWeightVersion drops the cached rows and stamps the new version.
    vllm.setWeightVersion(4);
    const [again] = await vllm.generate(grpo.slice(1, 2), params);
    expect(again!.reusedRoutingRows).toBe(0);
    expect(again!.weightVersion).toBe(4);
  });

  it('an answer with no generated token (an abort) is returned, not cached', async () => {
    // A real answer cut to zero output tokens, as a server aborting a request sends it.
    const aborted: typeof fetch = async (input, init) => {
      const json = (await (await fetch(input, init)).json()) as {
        output_ids: number[];
        meta_info: Record<string, unknown>;
      };
      const rowBytes = config.numLayers * config.topK * 4;
      const routed = Buffer.from(json.meta_info.routed_experts as string, 'base64');
      json.output_ids = [];
      json.meta_info.output_token_logprobs = [];
      json.meta_info.finish_reason = { type: 'abort', message: 'cancelled' };
      json.meta_info.routed_experts = routed.subarray(0, routed.length - rowBytes).toString('base64');
      return new Response(JSON.stringify(json));
    };
    const adapter = createHttpRolloutEngine({ servers: [servers[0]!.url], config, fetch: aborted });
    const [trajectory] = await adapter.generate(grpo.slice(0, 1), { ...params, maxNewTokens: 1 });
    expect(trajectory!.finishReason).toBe('abort');
    expect(trajectory!.responseIds.length).toBe(0);
    expect(trajectory!.routing!.positions).toBe(grpo[0]!.promptIds.length - 1);
    expect(adapter.prefixCacheStats().cachedPositions).toBe(0);
  });

  it('a weight push that fails part-way still drops the cached rows of the old weights', async () => {
    const adapter = createHttpRolloutEngine({
      servers: [servers[0]!.url],
      config,
      weightSync: async () => {
        throw new Error('second server unreachable');
      },
    });
    await adapter.generate(grpo.slice(0, 1), params);
    await expect(adapter.updateWeights(weights, 1)).rejects.toThrow(/unreachable/);
    const [next] = await adapter.generate(grpo.slice(1, 2), params);
    expect(next!.reusedRoutingRows).toBe(0);
  });

  it('compact routing and prefix reuse off give the same trajectories', async () => {
    const plain = createHttpRolloutEngine({ servers: [servers[0]!.url], config, prefixReuse: false });
    const compact = createHttpRolloutEngine({ servers: [servers[1]!.url], config, compactRouting: true });
    const a = await plain.generate(grpo.slice(0, 4), params);
    const b = await compact.generate(grpo.slice(0, 4), params);
    expect(b.map((t) => [...t.routing!.experts])).toEqual(a.map((t) => [...t.routing!.experts]));
    expect(compact.wireStats().routingChars).toBeLessThan(plain.wireStats().routingChars / 2);
  });

  it('retries connection failures whole and reports them', async () => {
    let failures = 2;
    const flaky: typeof fetch = (input, init) => {
      if (failures-- > 0) return Promise.reject(new TypeError('fetch failed'));
      return fetch(input, init);
    };
    const attempts: number[] = [];
    const adapter = createHttpRolloutEngine({
      servers: [servers[0]!.url],
      config,
      fetch: flaky,
      retryBackoffMs: 1,
      onRetry: (info) => attempts.push(info.attempt),
    });
    const [trajectory] = await adapter.generate(grpo.slice(0, 1), params);
    expect(attempts).toEqual([1, 2]);
    expect(adapter.wireStats().retries).toBe(2);
    const [again] = await createHttpRolloutEngine({ servers: [servers[1]!.url], config }).generate(
      grpo.slice(0, 1),
      params,
    );
    expect([...trajectory!.responseIds]).toEqual([...again!.responseIds]);
  });

  it('gives up with IO_ERROR after retries on 5xx and on timeouts', async () => {
    const stubs: Server[] = [];
    const stub = async (handler: Parameters<typeof createServer>[1]) => {
      const server = createServer(handler);
      stubs.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    };
    try {
      let calls = 0;
      const failing = await stub((_request, response) => {
        calls++;
        response.writeHead(500).end('boom');
      });
      const silent = await stub(() => {});
      const options = { config, retries: 2, retryBackoffMs: 1 };
      await expect(
        createHttpRolloutEngine({ ...options, servers: [failing] }).generate(grpo.slice(0, 1), params),
      ).rejects.toThrow(/after 3 attempts.*HTTP 500/);
      expect(calls).toBe(3);
      const timeout = createHttpRolloutEngine({ ...options, servers: [silent], timeoutMs: 50, retries: 0 });
      await expect(timeout.generate(grpo.slice(0, 1), params)).rejects.toThrow(/timed out after 50 ms/);
    } finally {
      for (const server of stubs) {
        server.closeAllConnections();
        server.close();
      }
    }
  });

  it('a server without routing support is a clear ROUTING_MISSING naming it; 4xx is not retried', async () => {
    const engine = await createOnnxRolloutEngine({ config, weights });
    const bare = await createSglangServer({ engine, returnRoutedExperts: false });
    try {
      const adapter = createHttpRolloutEngine({ servers: [bare.url], config });
      await expect(adapter.generate(grpo.slice(0, 1), params)).rejects.toThrow(
        new RegExp(`server ${bare.url}.*--enable-return-routed-experts`),
      );
      const tooLong = { ...params, maxNewTokens: 1000 };
      expect(await codeOf(() => adapter.generate(grpo.slice(0, 1), tooLong))).toBe('INVALID_ARGUMENT');
      expect(bare.stats().badRequests).toBe(1);
    } finally {
      await bare.close();
      await engine.dispose();
    }
  });

  it('refuses mixed weight versions unless allowed, and drops cached prompt rows of an older version', async () => {
    const engineA = await createOnnxRolloutEngine({ config, weights, weightVersion: 1 });
    const engineB = await createOnnxRolloutEngine({ config, weights, weightVersion: 2 });
    const a = await createSglangServer({ engine: engineA });
    const b = await createSglangServer({ engine: engineB });
    try {
      const both = [a.url, b.url];
      const batch = grpo.slice(0, 4);
      const strict = createHttpRolloutEngine({
        servers: both,
        config,
        maxConcurrentPerServer: 1,
        prefixReuse: false,
      });
      expect(await codeOf(() => strict.generate(batch, params))).toBe('BACKEND_CONFLICT');
      const lenient = createHttpRolloutEngine({
        servers: both,
        config,
        allowMixedWeightVersions: true,
        prefixReuse: false,
        maxConcurrentPerServer: 1,
      });
      const mixed = await lenient.generate(batch, params);
      expect(new Set(mixed.map((t) => t.weightVersion))).toEqual(new Set([1, 2]));

      // Prompt rows cached at version 1; the server moves to version 3 out of band; the next request is
      // fetched whole instead of being spliced onto stale rows.
      const single = createHttpRolloutEngine({ servers: [a.url], config });
      await single.generate(batch.slice(0, 1), params);
      await engineA.updateWeights(createRandomWeights(config, 9), 3);
      const [fresh] = await single.generate(batch.slice(1, 2), params);
      expect(fresh!.reusedRoutingRows).toBe(0);
      expect(fresh!.weightVersion).toBe(3);
    } finally {
      await a.close();
      await b.close();
      await engineA.dispose();
      await engineB.dispose();
    }
  });

  it('sends sampling_seed per planned call unless sendSeed is false', async () => {
    const bodies: Record<string, unknown>[] = [];
    const recording: typeof fetch = (input, init) => {
      bodies.push(JSON.parse(String(init?.body)) as Record<string, unknown>);
      return fetch(input, init);
    };
    const seeds = () => bodies.map((body) => (body.sampling_params as Record<string, unknown>).sampling_seed);
    await createHttpRolloutEngine({ servers: [servers[0]!.url], config, fetch: recording }).generate(
      grpo.slice(0, 4),
      params,
    );
    expect(seeds()).toEqual([requestSeed(7, 0), requestSeed(7, 1)]);
    expect(bodies.map((body) => (body.sampling_params as Record<string, unknown>).n)).toEqual([undefined, 3]);
    expect(bodies.map((body) => body.routed_experts_start_len)).toEqual([undefined, 5]);
    bodies.length = 0;
    await createHttpRolloutEngine({
      servers: [servers[0]!.url],
      config,
      fetch: recording,
      sendSeed: false,
    }).generate(grpo.slice(0, 1), params);
    expect(seeds()).toEqual([undefined]);
  });

  it('a response whose weights changed mid-request is refused unless mixing is allowed', async () => {
    // A real server's answer with SGLang's weight_versions spans added, as a server updated mid-request sends.
    const withSpans: typeof fetch = async (input, init) => {
      const json = (await (await fetch(input, init)).json()) as { meta_info: Record<string, unknown> };
      json.meta_info.weight_versions = [
        { version: '0', start: 0, end: 2 },
        { version: '1', start: 2, end: 6 },
      ];
      return new Response(JSON.stringify(json), { status: 200 });
    };
    const strict = createHttpRolloutEngine({ servers: [servers[0]!.url], config, fetch: withSpans });
    await expect(strict.generate(grpo.slice(0, 1), params)).rejects.toThrow(/changed weights mid-request/);
    const lenient = createHttpRolloutEngine({
      servers: [servers[0]!.url],
      config,
      fetch: withSpans,
      allowMixedWeightVersions: true,
    });
    expect((await lenient.generate(grpo.slice(0, 1), params)).length).toBe(1);
  });

  it('updateWeights without weightSync is UNSUPPORTED; with checkpointWeightSync every server loads it', async () => {
    const engine = await createOnnxRolloutEngine({ config, weights });
    const { loadCheckpointWeights } = await import('../server/load-checkpoint-weights.js');
    const server = await createSglangServer({ engine, loadWeights: loadCheckpointWeights });
    try {
      const outOfBand = createHttpRolloutEngine({ servers: [server.url], config });
      expect(await codeOf(() => outOfBand.updateWeights(weights, 1))).toBe('UNSUPPORTED');
      const synced = createHttpRolloutEngine({
        servers: [server.url],
        config,
        weightSync: checkpointWeightSync({ directory: scratch, config }),
      });
      const other = createRandomWeights(config, 11);
      await synced.updateWeights(other, 6);
      expect(engine.stats().weightVersion).toBe(6);
      const [remote] = await synced.generate(grpo.slice(0, 1), params);
      const local = await createOnnxRolloutEngine({ config, weights: other, weightVersion: 6 });
      const [expected] = await local.generate(grpo.slice(0, 1), {
        ...params,
        seed: requestSeed(params.seed, 0),
      });
      await local.dispose();
      expect(remote!.weightVersion).toBe(6);
      expect([...remote!.responseIds]).toEqual([...expected!.responseIds]);
      // Once every server holds version 7, the folder of version 6 goes; the newest stays on disk.
      await synced.updateWeights(weights, 7);
      expect(await readdir(scratch)).toEqual(['v7']);
      // SGLang answers {success, message} without a version: the version is read from /get_weight_version.
      const sglangLike = (serving: string, success = true): typeof fetch => {
        return async (input) =>
          String(input).endsWith('/get_weight_version')
            ? new Response(JSON.stringify({ weight_version: serving }))
            : new Response(JSON.stringify({ success, message: 'ok', num_paused_requests: 0 }));
      };
      const sgl = 'http://sglang.example:30000';
      await checkpointWeightSync({ directory: scratch, config, fetch: sglangLike('8') })(weights, 8, [sgl]);
      await expect(
        checkpointWeightSync({ directory: scratch, config, fetch: sglangLike('7') })(weights, 8, [sgl]),
      ).rejects.toThrow(/did not load .*serving version 7/);
      await expect(
        checkpointWeightSync({ directory: scratch, config, fetch: sglangLike('8', false) })(weights, 8, [
          sgl,
        ]),
      ).rejects.toThrow(/did not load/);
      // A server without the endpoint (vLLM) is named, not retried into a timeout.
      const noRoute: typeof fetch = async () => new Response('Not Found', { status: 404 });
      const toVllm = checkpointWeightSync({ directory: scratch, config, fetch: noRoute });
      await expect(toVllm(weights, 8, ['http://vllm.example:8000'])).rejects.toThrow(
        /vllm\.example:8000 has no \/update_weights_from_disk/,
      );
    } finally {
      await server.close();
      await engine.dispose();
    }
  });
});
