/*
 * Time of one trainStep (forward + backward + AdamW) on a fixed batch, for before/after comparisons of the
 * trainer's own code (run: `node --conditions=@moerl/source --import tsx bench/step-time.ts`). Prints the
 * best and the median of STEPS steps as tokens/s, for one micro-batch and for micro-batches of 2 sequences.
 * Env: BENCH_STEPS (default 20), BENCH_BACKEND (default tfjs-wasm). Asserts nothing.
 */
import { performance } from 'node:perf_hooks';
import { createRandom, type TrainingBatch } from '@moerl/core';
import { createRandomWeights, negativeMeanLogprobObjective, smallMoeConfig } from '@moerl/testkit';
import { createTfjsPolicyTrainer, type TfjsBackendName } from '../src/index.js';

const SEQUENCES = 8;
const PROMPT = 16;
const RESPONSE = 48;
const STEPS = Number(process.env.BENCH_STEPS ?? 20);
const BACKEND = (process.env.BENCH_BACKEND ?? 'tfjs-wasm') as TfjsBackendName;
const fedTokens = SEQUENCES * (PROMPT + RESPONSE - 1);

function makeBatch(): TrainingBatch {
  const random = createRandom(42);
  const ids = (length: number) => Int32Array.from({ length }, () => random.nextInt(smallMoeConfig.vocabSize));
  return {
    sequences: Array.from({ length: SEQUENCES }, () => ({
      promptIds: ids(PROMPT),
      responseIds: ids(RESPONSE),
    })),
  };
}

async function measure(microBatchSize: number | undefined): Promise<{ best: number; median: number }> {
  const trainer = await createTfjsPolicyTrainer({
    config: smallMoeConfig,
    weights: createRandomWeights(smallMoeConfig, 1),
    learningRate: 1e-4,
    backendOptions: { backends: [BACKEND], ...(microBatchSize === undefined ? {} : { microBatchSize }) },
  });
  const batch = makeBatch();
  const objective = negativeMeanLogprobObjective();
  for (let warm = 0; warm < 2; warm++) await trainer.trainStep(batch, objective, { routing: 'free' });
  const seconds: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const start = performance.now();
    await trainer.trainStep(batch, objective, { routing: 'free' });
    seconds.push((performance.now() - start) / 1000);
  }
  await trainer.dispose();
  seconds.sort((a, b) => a - b);
  return { best: fedTokens / seconds[0]!, median: fedTokens / seconds[Math.floor(seconds.length / 2)]! };
}

for (const [label, micro] of [
  ['one micro-batch', undefined],
  ['micro-batches of 2', 2],
] as const) {
  const { best, median } = await measure(micro);
  console.log(`${label.padEnd(20)} | best ${best.toFixed(0)} tok/s | median ${median.toFixed(0)} tok/s`);
}
