/*
 * `pnpm bench`: cost of sampling over HTTP (`moerl serve` + the adapter, SGLang and vLLM dialects) against
 * the in-process ONNX engine for one GRPO batch; routing bytes on the wire per token, compact vs SGLang's
 * int32 base64 vs vLLM's .npy; and what the client's router-cache saves on multi-turn prompts.
 * No assertions; figures depend on the CPU and its load.
 */
import os from 'node:os';
import { createOnnxRolloutEngine } from '@moerl/backend-onnx';
import {
  DEFAULT_SAMPLING_PARAMS,
  type GenerateRequest,
  type RolloutEngine,
  type SamplingParams,
} from '@moerl/core';
import { createRandomWeights, smallMoeConfig } from '@moerl/testkit';
import { createHttpRolloutEngine, createSglangServer, planCalls, type SglangServer } from '../src/index.js';

// testkit's small MoE: 4 layers (layer 0 dense), 3 MoE layers of 8 experts, top-2.
const config = smallMoeConfig;
const weights = createRandomWeights(config, 0);
const PROMPTS = 8;
const SAMPLES = 8;
const PROMPT_LENGTH = 24;
const params: SamplingParams = { ...DEFAULT_SAMPLING_PARAMS, temperature: 1, maxNewTokens: 16, seed: 1 };
const batch: GenerateRequest[] = Array.from({ length: PROMPTS }, (_, prompt) =>
  Int32Array.from({ length: PROMPT_LENGTH }, (_, index) => (prompt * 7 + index * 5) % config.vocabSize),
).flatMap((promptIds, prompt) =>
  Array.from({ length: SAMPLES }, (_, sample) => ({
    id: `q${prompt}s${sample}`,
    groupId: `q${prompt}`,
    promptIds,
  })),
);

async function seconds(run: () => Promise<unknown>, repeats = 3): Promise<number> {
  await run(); // warm-up
  const times: number[] = [];
  for (let index = 0; index < repeats; index++) {
    const started = performance.now();
    await run();
    times.push((performance.now() - started) / 1000);
  }
  return times.sort((a, b) => a - b)[Math.floor(repeats / 2)]!;
}

async function main(): Promise<void> {
  console.log(
    `machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, node ${process.version}`,
  );
  console.log(
    `GRPO batch: ${PROMPTS} prompts × ${SAMPLES} samples, prompt ${PROMPT_LENGTH}, ${params.maxNewTokens} new tokens\n`,
  );
  const local = await createOnnxRolloutEngine({ config, weights });
  // The in-process engine in one call (its natural use), and the adapter's plan of calls run in-process
  // one after another (the same work the servers do, without HTTP).
  const inProcess = await seconds(() => local.generate(batch, params));
  const planned = await seconds(async () => {
    for (const call of planCalls(batch, params)) {
      await local.generate(
        call.indices.map((index) => batch[index]!),
        { ...call.params, seed: call.seed },
      );
    }
  });
  console.log(`in-process, one call:              ${(inProcess * 1000).toFixed(0)} ms`);
  console.log(`in-process, the adapter's calls:   ${(planned * 1000).toFixed(0)} ms`);

  const engines: RolloutEngine[] = [];
  const servers: SglangServer[] = [];
  for (let index = 0; index < 2; index++) {
    const engine = await createOnnxRolloutEngine({ config, weights });
    engines.push(engine);
    servers.push(await createSglangServer({ engine }));
  }
  const variants = [
    { count: 1, protocol: 'sglang', compactRouting: false, label: 'sglang int32  ' },
    { count: 1, protocol: 'sglang', compactRouting: true, label: 'sglang compact' },
    { count: 1, protocol: 'vllm', compactRouting: false, label: 'vllm .npy u1  ' },
    { count: 2, protocol: 'sglang', compactRouting: true, label: 'sglang compact' },
  ] as const;
  for (const { count, protocol, compactRouting, label } of variants) {
    const adapter = createHttpRolloutEngine({
      servers: servers.slice(0, count).map((server) => server.url),
      config,
      protocol,
      compactRouting,
      prefixReuse: false,
    });
    const time = await seconds(() => adapter.generate(batch, params));
    console.log(
      `http, ${count} server(s), ${label}:  ${(time * 1000).toFixed(0)} ms  (× ${(time / inProcess).toFixed(2)} one call, × ${(time / planned).toFixed(2)} same calls in-process)`,
    );
  }
  console.log(
    '(servers share this process and its cores, so 2 servers measure protocol overhead, not scale-out)\n',
  );

  console.log('routing on the wire, bytes of base64 text per fed position (row) and per generated token:');
  const formats = [
    { protocol: 'sglang', compactRouting: false, label: 'int32 (SGLang)        ' },
    { protocol: 'sglang', compactRouting: true, label: 'compact uint8 (moerl) ' },
    { protocol: 'vllm', compactRouting: false, label: '.npy uint8 (vLLM)     ' },
  ] as const;
  for (const { protocol, compactRouting, label } of formats) {
    for (const prefixReuse of [false, true]) {
      const adapter = createHttpRolloutEngine({
        servers: [servers[0]!.url],
        config,
        protocol,
        compactRouting,
        prefixReuse,
      });
      const trajectories = await adapter.generate(batch, params);
      const rows = trajectories.reduce((sum, t) => sum + t.routing!.positions, 0);
      const generated = trajectories.reduce((sum, t) => sum + t.responseIds.length, 0);
      const chars = adapter.wireStats().routingChars;
      console.log(
        `  ${label}, prefix reuse ${prefixReuse ? 'on ' : 'off'}: ${(chars / rows).toFixed(1)} B/row, ${(chars / generated).toFixed(1)} B/generated token`,
      );
    }
  }

  // Multi-turn: each turn's prompt is the whole conversation so far plus a new message. The client's
  // router-cache holds the rows of earlier turns, so only the new message and answer cross the wire.
  console.log('\nmulti-turn (8 conversations × 4 turns, 16 new prompt tokens + 16 generated per turn):');
  for (const prefixReuse of [false, true]) {
    const adapter = createHttpRolloutEngine({ servers: [servers[0]!.url], config, prefixReuse });
    let conversations = Array.from({ length: 8 }, (_, index) =>
      Int32Array.from({ length: 16 }, (_, token) => (index * 11 + token * 3) % config.vocabSize),
    );
    let rows = 0;
    for (let turn = 0; turn < 4; turn++) {
      const requests = conversations.map((promptIds, index) => ({
        id: `c${index}t${turn}`,
        groupId: `c${index}t${turn}`,
        promptIds,
      }));
      const trajectories = await adapter.generate(requests, { ...params, seed: turn });
      rows += trajectories.reduce((sum, t) => sum + t.routing!.positions, 0);
      conversations = trajectories.map((t, index) =>
        Int32Array.from([
          ...t.promptIds,
          ...t.responseIds,
          ...Array.from({ length: 16 }, (_, token) => (index + token * 7 + turn) % config.vocabSize),
        ]),
      );
    }
    const chars = adapter.wireStats().routingChars;
    console.log(
      `  prefix reuse ${prefixReuse ? 'on ' : 'off'}: ${chars} B of routing for ${rows} rows (${(chars / rows).toFixed(1)} B/row), router-cache hit rate ${adapter.prefixCacheStats().hitRate.toFixed(2)}`,
    );
  }

  // Many clients, one server: calls that wait while the engine is busy are merged into one batch
  // (maxBatchRequests 256, the default) or run one at a time (1). Rounds alternate; medians.
  console.log('\nserver-side merging: 8 clients × 4 calls of 1 sample each, one server:');
  const mergeEngine = await createOnnxRolloutEngine({ config, weights });
  const mergeServers = {
    merged: await createSglangServer({ engine: mergeEngine }),
    serial: await createSglangServer({ engine: mergeEngine, maxBatchRequests: 1 }),
  };
  const clientsRound = (server: SglangServer) => async () => {
    await Promise.all(
      Array.from({ length: 8 }, async (_, client) => {
        const adapter = createHttpRolloutEngine({ servers: [server.url], config, prefixReuse: false });
        for (let call = 0; call < 4; call++) {
          await adapter.generate([batch[client * SAMPLES + call]!], { ...params, seed: client * 10 + call });
        }
      }),
    );
  };
  const mergeTimes = { merged: [] as number[], serial: [] as number[] };
  for (let round = 0; round < 5; round++) {
    for (const mode of ['serial', 'merged'] as const) {
      mergeTimes[mode].push(await seconds(clientsRound(mergeServers[mode]), 1));
    }
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const serialTime = median(mergeTimes.serial);
  const mergedTime = median(mergeTimes.merged);
  console.log(
    `  one call at a time: ${(serialTime * 1000).toFixed(0)} ms; merged: ${(mergedTime * 1000).toFixed(0)} ms (${mergeServers.merged.stats().engineCalls} engine calls for ${mergeServers.merged.stats().requests} HTTP calls); serial / merged = ${(serialTime / mergedTime).toFixed(2)}×`,
  );
  await mergeServers.merged.close();
  await mergeServers.serial.close();
  await mergeEngine.dispose();

  for (const server of servers) await server.close();
  for (const engine of engines) await engine.dispose();
  await local.dispose();
}

await main();
