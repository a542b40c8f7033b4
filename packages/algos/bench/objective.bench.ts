// Objective + gradient over 256 responses × 1 024 tokens, the size of a large RL step.
// Prints milliseconds per call (median of repeated runs); benchmarks print, they never assert.
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createRandom } from '@moerl/core';
import {
  createObjective,
  grpoAdvantages,
  logprobMismatch,
  type PolicyBatch,
  type PolicyLossName,
  type PolicyObjectiveConfig,
  preparePolicyObjective,
} from '../src/index.js';

const RESPONSES = 256;
const LENGTH = 1024;
const GROUP = 8;
const TOKENS = RESPONSES * LENGTH;

const random = createRandom(2024);
const sequenceOffsets = new Int32Array(RESPONSES + 1);
for (let i = 0; i < RESPONSES; i++) sequenceOffsets[i + 1] = (i + 1) * LENGTH;
const oldLogprobs = new Float32Array(TOKENS);
const logprobs = new Float32Array(TOKENS);
const refLogprobs = new Float32Array(TOKENS);
const engineLogprobs = new Float32Array(TOKENS);
const responseMask = new Uint8Array(TOKENS).fill(1);
for (let t = 0; t < TOKENS; t++) {
  oldLogprobs[t] = -3 * random.nextFloat();
  logprobs[t] = oldLogprobs[t]! + 0.2 * random.nextNormal();
  refLogprobs[t] = oldLogprobs[t]! + 0.1 * random.nextNormal();
  engineLogprobs[t] = oldLogprobs[t]! + 0.05 * random.nextNormal();
}
const rewards = Array.from({ length: RESPONSES }, () => (random.nextFloat() < 0.5 ? 1 : 0));
const groupIds = Array.from({ length: RESPONSES }, (_, i) => Math.floor(i / GROUP));

function time(label: string, run: () => unknown, iterations = 15): number {
  for (let i = 0; i < 3; i++) run();
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const start = performance.now();
    run();
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  const median = samples[Math.floor(samples.length / 2)]!;
  console.log(`${label.padEnd(64)} ${median.toFixed(2).padStart(8)} ms`);
  return median;
}

console.log(`@moerl/algos objective benchmark: ${RESPONSES} responses × ${LENGTH} tokens = ${TOKENS} tokens`);
console.log(`node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}\n`);

let advantages: Float64Array = new Float64Array();
time('grpoAdvantages (groups of 8)', () => {
  advantages = grpoAdvantages({ sequenceOffsets, groupIds, rewards, responseMask }).tokenAdvantages;
});
const batch: PolicyBatch = {
  sequenceOffsets,
  oldLogprobs,
  advantages,
  responseMask,
  refLogprobs,
  engineLogprobs,
};

const full: PolicyObjectiveConfig = {
  kl: { coefficient: 0.001, estimator: 'k3' },
  importanceSampling: { mode: 'truncate', level: 'token', threshold: 2 },
};
for (const algorithm of ['ppo-clip', 'gspo', 'gspo-token'] as PolicyLossName[]) {
  const prepared = preparePolicyObjective(algorithm, batch);
  time(`${algorithm}: evaluate (float64 loss + gradient)`, () => prepared.evaluate(logprobs));
  const withExtras = preparePolicyObjective(algorithm, batch, full);
  time(`${algorithm}: evaluate with k3 KL loss and TIS`, () => withExtras.evaluate(logprobs));
}
time('grpo: build for the batch + evaluate (core Objective, KL, TIS)', () =>
  createObjective('grpo', { batch, ...full }).evaluate({ logprobs, sequenceOffsets }),
);
time('logprobMismatch (k3 KL, extremes, per-position buckets)', () =>
  logprobMismatch({ sequenceOffsets, trainerLogprobs: logprobs, engineLogprobs, responseMask }),
);
