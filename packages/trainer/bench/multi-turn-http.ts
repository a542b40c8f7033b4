/**
 * Routing on the wire per turn of multi-turn rollouts over HTTP (`moerl serve`, SGLang protocol): the client
 * asking only for each turn's new rows (`routed_experts_start_len`, earlier rows from its routing cache)
 * against fetching every row every turn. 16 prompts × 8 samples, 4 turns, 6-token observations, demo-sized
 * model on loopback. Prints the routing characters each turn received, their ratio, the rows reused, and
 * the wall time ratio of one interleaved run each. Asserts nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandom, writeHfConfigFile, writeSafetensorsFile } from '@moerl/core';
import { createHttpRolloutEngine, type HttpRolloutEngine } from '@moerl/rollout-http';
import { createRandomWeights } from '@moerl/testkit';
import { collectConversations } from '../src/run/conversation-rollouts.js';
import { serveOnnxEngine } from '../src/serve/serve-onnx-engine.js';
import {
  config,
  environment,
  examples,
  observation,
  sampling,
  task,
  turns,
} from './fixed-reply-conversations.js';

const directory = await mkdtemp(join(tmpdir(), 'moerl-bench-http-'));
await writeHfConfigFile(join(directory, 'config.json'), config);
await writeSafetensorsFile(join(directory, 'model.safetensors'), createRandomWeights(config, 1));
const served = await serveOnnxEngine({ checkpointDir: directory, precision: 'fp32' });

/** Routing characters received per generate call (one call per turn), and the run's wall time. */
async function run(prefixReuse: boolean) {
  const client: HttpRolloutEngine = createHttpRolloutEngine({ servers: [served.url], config, prefixReuse });
  const perTurn: number[] = [];
  const engine: HttpRolloutEngine = {
    ...client,
    async generate(requests, sampling) {
      const before = client.wireStats().routingChars;
      const result = await client.generate(requests, sampling);
      perTurn.push(client.wireStats().routingChars - before);
      return result;
    },
  };
  const start = performance.now();
  await collectConversations(engine, task, environment, examples, {
    groupSize: 8,
    sampling,
    random: createRandom(9),
    idPrefix: 'h',
  });
  const seconds = (performance.now() - start) / 1000;
  const { reusedRoutingRows } = client.wireStats();
  await client.dispose();
  return { perTurn, seconds, reusedRoutingRows };
}

try {
  const fetching = await run(false);
  const reusing = await run(true);
  console.log(
    `multi-turn rollouts over HTTP: ${examples.length} prompts × 8 samples, ${turns} turns, ${observation.length}-token observations`,
  );
  console.log('turn  routing chars, every row  only new rows  ratio');
  fetching.perTurn.forEach((chars, turn) => {
    const reused = reusing.perTurn[turn]!;
    console.log(
      `${String(turn + 1).padStart(4)}  ${String(chars).padStart(23)}  ${String(reused).padStart(13)}  ${(chars / Math.max(reused, 1)).toFixed(2)}×`,
    );
  });
  const total = (values: number[]) => values.reduce((sum, value) => sum + value, 0);
  console.log(
    `all turns: ${total(fetching.perTurn)} vs ${total(reusing.perTurn)} routing chars (${(total(fetching.perTurn) / total(reusing.perTurn)).toFixed(2)}×); rows taken from the client cache: ${reusing.reusedRoutingRows}`,
  );
  console.log(
    `wall time every row / only new rows: ${(fetching.seconds / reusing.seconds).toFixed(2)}× (${fetching.seconds.toFixed(2)} s / ${reusing.seconds.toFixed(2)} s, one run each)`,
  );
} finally {
  await served.close();
  await rm(directory, { recursive: true, force: true });
}
