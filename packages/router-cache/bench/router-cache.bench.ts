/**
 * Router cache benchmark: match/insert throughput on GRPO-like and multi-turn workloads against a naive
 * Map-of-prefixes, match latency on a long cached prefix, and memory per cached token.
 * Run: pnpm bench (node --expose-gc for the memory figures). Prints medians over rounds, never asserts.
 */

import type { RoutingRecord } from '@moerl/core';
import { createRandom, createRoutingRecord } from '@moerl/core';
import { createRouterCache } from '../src/index.js';
import { NaivePrefixMap } from './naive-prefix-map.js';

interface Kv {
  readonly bytes: number;
}

interface Shape {
  readonly name: string;
  readonly moeLayers: number;
  readonly topK: number;
  readonly numExperts: number;
  /** KV bytes per token: layers × (K and V) × kv heads × head dim × bytes per value. */
  readonly kvBytesPerToken: number;
}

const qwen3: Shape = {
  name: 'Qwen3-30B-A3B (48 layers, top-8 of 128, 4 KV heads × 128, bf16 KV)',
  moeLayers: 48,
  topK: 8,
  numExperts: 128,
  kvBytesPerToken: 48 * 2 * 4 * 128 * 2,
};
const demo: Shape = {
  name: 'demo config (4 layers, 3 MoE, top-2 of 8, 2 KV heads × 8, fp32 KV)',
  moeLayers: 3,
  topK: 2,
  numExperts: 8,
  kvBytesPerToken: 4 * 2 * 2 * 8 * 4,
};

const random = createRandom(7);
const vocab = 1000;
const randomTokens = (length: number) => Array.from({ length }, () => random.nextInt(vocab));

function routingOf(shape: Shape, positions: number): RoutingRecord {
  const ids = new Uint8Array(positions * shape.moeLayers * shape.topK);
  for (let row = 0; row < ids.length; row += shape.topK) {
    const start = random.nextInt(shape.numExperts);
    for (let k = 0; k < shape.topK; k++) ids[row + k] = (start + k) % shape.numExperts;
  }
  return createRoutingRecord({ ...shape, positions }, ids);
}

const kvOf = (shape: Shape, count: number): Kv[] =>
  Array.from({ length: count }, () => ({ bytes: shape.kvBytesPerToken }));

interface Step {
  readonly query: number[];
  readonly full: number[];
  readonly kv: Kv[];
  readonly routing: RoutingRecord;
}

/** P prompts × G samples: every sample matches its prompt, then inserts prompt + response. */
function grpoWorkload(
  shape: Shape,
  prompts: number,
  group: number,
  promptLength: number,
  responseLength: number,
) {
  const steps: Step[] = [];
  for (let p = 0; p < prompts; p++) {
    const prompt = randomTokens(promptLength);
    for (let g = 0; g < group; g++) {
      const full = [...prompt, ...randomTokens(responseLength)];
      steps.push({
        query: prompt,
        full,
        kv: kvOf(shape, full.length),
        routing: routingOf(shape, full.length),
      });
    }
  }
  return steps;
}

/** Conversations whose every turn resends the whole history plus a new user message and reply. */
function multiTurnWorkload(
  shape: Shape,
  conversations: number,
  turns: number,
  userLength: number,
  replyLength: number,
) {
  const steps: Step[] = [];
  for (let c = 0; c < conversations; c++) {
    let history: number[] = [];
    for (let t = 0; t < turns; t++) {
      const query = [...history, ...randomTokens(userLength)];
      const full = [...query, ...randomTokens(replyLength)];
      steps.push({ query, full, kv: kvOf(shape, full.length), routing: routingOf(shape, full.length) });
      history = full;
    }
  }
  return steps;
}

interface Timing {
  matchMs: number;
  insertMs: number;
  matchedTokens: number;
}

function runRadix(shape: Shape, steps: readonly Step[]): Timing {
  const cache = createRouterCache<Kv>({ ...shape, budgetBytes: Number.MAX_SAFE_INTEGER });
  const timing: Timing = { matchMs: 0, insertMs: 0, matchedTokens: 0 };
  for (const step of steps) {
    let start = performance.now();
    const hit = cache.match(step.query);
    timing.matchMs += performance.now() - start;
    timing.matchedTokens += hit.length;
    start = performance.now();
    cache.insert(step.full, step.kv, step.routing);
    timing.insertMs += performance.now() - start;
    hit.release();
  }
  return timing;
}

function runNaive(shape: Shape, steps: readonly Step[]): Timing {
  const cache = new NaivePrefixMap<Kv>(shape.moeLayers * shape.topK);
  const timing: Timing = { matchMs: 0, insertMs: 0, matchedTokens: 0 };
  for (const step of steps) {
    let start = performance.now();
    const hit = cache.match(step.query);
    timing.matchMs += performance.now() - start;
    timing.matchedTokens += hit.length;
    start = performance.now();
    cache.insert(step.full, step.kv, step.routing);
    timing.insertMs += performance.now() - start;
  }
  return timing;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const rate = (tokens: number, ms: number) => `${(((tokens / ms) * 1000) / 1e6).toFixed(2)} M tok/s`;

function compare(label: string, shape: Shape, steps: readonly Step[], rounds: number): void {
  const queryTokens = steps.reduce((sum, step) => sum + step.query.length, 0);
  const insertTokens = steps.reduce((sum, step) => sum + step.full.length, 0);
  const radix: Timing[] = [];
  const naive: Timing[] = [];
  // Alternate the two so drift in machine load hits both alike.
  for (let round = 0; round < rounds; round++) {
    radix.push(runRadix(shape, steps));
    naive.push(runNaive(shape, steps));
  }
  const radixMatch = median(radix.map((t) => t.matchMs));
  const naiveMatch = median(naive.map((t) => t.matchMs));
  const radixInsert = median(radix.map((t) => t.insertMs));
  const naiveInsert = median(naive.map((t) => t.insertMs));
  console.log(`\n${label}`);
  console.log(
    `  hit tokens / requested: ${(radix[0]!.matchedTokens / queryTokens).toFixed(3)} (naive ${(naive[0]!.matchedTokens / queryTokens).toFixed(3)})`,
  );
  console.log(
    `  match : radix ${rate(queryTokens, radixMatch)}, naive ${rate(queryTokens, naiveMatch)}, radix/naive speed ${(naiveMatch / radixMatch).toFixed(1)}×`,
  );
  console.log(
    `  insert: radix ${rate(insertTokens, radixInsert)}, naive ${rate(insertTokens, naiveInsert)}, radix/naive speed ${(naiveInsert / radixInsert).toFixed(1)}×`,
  );
}

/** Latency of matching a cached prefix held in one edge, or in `edges` edges (branches force splits). */
function matchLatency(shape: Shape, length: number, repeats: number, edges = 1): void {
  const cache = createRouterCache<Kv>({ ...shape, budgetBytes: Number.MAX_SAFE_INTEGER });
  const tokens = randomTokens(length);
  cache.insert(tokens, kvOf(shape, length), routingOf(shape, length));
  for (let edge = 1; edge < edges; edge++) {
    const branch = [...tokens.slice(0, (edge * length) / edges), vocab + edge];
    cache.insert(branch, kvOf(shape, branch.length), routingOf(shape, branch.length));
  }
  const times: number[] = [];
  for (let repeat = 0; repeat < repeats; repeat++) {
    const start = performance.now();
    cache.match(tokens).release();
    times.push(performance.now() - start);
  }
  console.log(`\nmatch of a ${length}-token cached prefix in ${edges} edge(s), ${shape.name}:`);
  console.log(
    `  median ${(median(times) * 1000).toFixed(1)} µs, p90 ${(times.sort((a, b) => a - b)[Math.floor(repeats * 0.9)]! * 1000).toFixed(1)} µs`,
  );
}

/** Heap + ArrayBuffer bytes after collecting garbage; waits for the background sweeper to free buffers. */
async function settledHeap(gc: () => void): Promise<number> {
  for (let round = 0; round < 3; round++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

async function heapBytesPerToken(shape: Shape, pageSize: number, sequences: number, length: number) {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return undefined;
  const data = Array.from({ length: sequences }, () => {
    const tokens = randomTokens(length);
    return { tokens, kv: kvOf(shape, length), routing: routingOf(shape, length) };
  });
  const before = await settledHeap(gc);
  const cache = createRouterCache<Kv>({ ...shape, pageSize, budgetBytes: Number.MAX_SAFE_INTEGER });
  for (const item of data) cache.insert(item.tokens, item.kv, item.routing);
  const after = await settledHeap(gc);
  return (after - before) / cache.stats().cachedPositions;
}

async function memory(shape: Shape): Promise<void> {
  const routingBytes = shape.moeLayers * shape.topK * (shape.numExperts <= 256 ? 1 : 2);
  console.log(`\nmemory per cached token, ${shape.name}:`);
  console.log(
    `  KV ${shape.kvBytesPerToken} B, routing ${routingBytes} B → routing = ${((100 * routingBytes) / shape.kvBytesPerToken).toFixed(2)}% of KV`,
  );
  for (const pageSize of [1, 16]) {
    const measured = await heapBytesPerToken(shape, pageSize, 64, 512);
    if (measured === undefined) {
      console.log('  (run with node --expose-gc to measure heap bytes per token)');
      return;
    }
    const overhead = measured - routingBytes;
    console.log(
      `  page size ${pageSize}: cache heap ${measured.toFixed(0)} B/token (routing ${routingBytes} B + structure ${overhead.toFixed(0)} B) = ${((100 * measured) / shape.kvBytesPerToken).toFixed(2)}% of KV`,
    );
  }
}

const quick = process.argv.includes('--quick');
const rounds = quick ? 3 : 7;
console.log(`router-cache benchmark (${quick ? 'quick' : 'full'}; medians of ${rounds} alternating rounds)`);
compare(
  'GRPO: 16 prompts × 256 tokens, G = 8 responses × 256 tokens (demo shape)',
  demo,
  grpoWorkload(demo, 16, 8, 256, 256),
  rounds,
);
compare(
  'GRPO: same workload, Qwen3-30B-A3B routing rows',
  qwen3,
  grpoWorkload(qwen3, 16, 8, 256, 256),
  rounds,
);
compare(
  'multi-turn: 16 conversations × 8 turns of 64 user + 128 reply tokens',
  demo,
  multiTurnWorkload(demo, 16, 8, 64, 128),
  rounds,
);
matchLatency(qwen3, 4096, quick ? 50 : 200);
matchLatency(qwen3, 4096, quick ? 50 : 200, 8);
matchLatency(demo, 4096, quick ? 50 : 200);
await memory(qwen3);
await memory(demo);
