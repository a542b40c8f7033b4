/*
 * `pnpm bench`: cost of sampling over HTTP (`moerl serve` + the adapter) against the in-process ONNX engine
 * for one GRPO batch, and routing bytes on the wire per token, compact vs SGLang's int32 base64.
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
  for (const count of [1, 2]) {
    for (const compactRouting of [false, true]) {
      const adapter = createHttpRolloutEngine({
        servers: servers.slice(0, count).map((server) => server.url),
        config,
        compactRouting,
        prefixReuse: false,
      });
      const time = await seconds(() => adapter.generate(batch, params));
      console.log(
        `http, ${count} server(s), ${compactRouting ? 'compact' : 'int32  '}:  ${(time * 1000).toFixed(0)} ms  (× ${(time / inProcess).toFixed(2)} one call, × ${(time / planned).toFixed(2)} same calls in-process)`,
      );
    }
  }
  console.log(
    '(servers share this process and its cores, so 2 servers measure protocol overhead, not scale-out)\n',
  );

  console.log('routing on the wire, bytes of base64 text per fed position (row) and per generated token:');
  for (const compactRouting of [false, true]) {
    for (const prefixReuse of [false, true]) {
      const adapter = createHttpRolloutEngine({
        servers: [servers[0]!.url],
        config,
        compactRouting,
        prefixReuse,
      });
      const trajectories = await adapter.generate(batch, params);
      const rows = trajectories.reduce((sum, t) => sum + t.routing!.positions, 0);
      const generated = trajectories.reduce((sum, t) => sum + t.responseIds.length, 0);
      const chars = adapter.wireStats().routingChars;
      console.log(
        `  ${compactRouting ? 'compact uint8' : 'int32 (SGLang)'}, prefix reuse ${prefixReuse ? 'on ' : 'off'}: ${(chars / rows).toFixed(1)} B/row, ${(chars / generated).toFixed(1)} B/generated token`,
      );
    }
  }
  for (const server of servers) await server.close();
  for (const engine of engines) await engine.dispose();
  await local.dispose();
}

await main();
