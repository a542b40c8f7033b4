/*
 * `pnpm bench`: throughput of the ONNX rollout engine, measured in one run, printed as figures and ratios.
 * No assertions. Run on an idle machine; figures depend on the CPU and its load.
 */
import os from 'node:os';
import {
  createModelConfig,
  DEFAULT_SAMPLING_PARAMS,
  type GenerateRequest,
  type ModelConfig,
  moeLayerIndices,
  type SamplingParams,
  type Trajectory,
} from '@moerl/core';
import {
  createRandomWeights,
  createReferenceRolloutEngine,
  demoShapedMoeConfig,
  smallMoeConfig,
} from '@moerl/testkit';
import * as ort from 'onnxruntime-node';
import { createOnnxRolloutEngine, type OnnxRolloutEngine } from '../src/index.js';

// testkit's small MoE: 4 layers (layer 0 dense), 3 MoE layers of 8 experts, top-2.
const demoConfig = smallMoeConfig;
// A wider model, so that arithmetic rather than per-call overhead dominates.
const wideConfig = createModelConfig({
  ...demoConfig,
  vocabSize: 1024,
  hiddenSize: 256,
  numAttentionHeads: 8,
  numKeyValueHeads: 4,
  headDim: 32,
  moeIntermediateSize: 128,
  intermediateSize: 512,
});

const sampling = (overrides: Partial<SamplingParams> = {}): SamplingParams => ({
  ...DEFAULT_SAMPLING_PARAMS,
  temperature: 1,
  seed: 1,
  ...overrides,
});
const promptOf = (length: number, salt: number, vocab: number) =>
  Int32Array.from({ length }, (_, index) => (index * 13 + salt * 7 + 1) % vocab);
const requestsOf = (
  count: number,
  promptLength: number,
  vocab: number,
  sharedPrompt = false,
): GenerateRequest[] =>
  Array.from({ length: count }, (_, index) => ({
    id: `r${index}`,
    groupId: sharedPrompt ? 'g' : `g${index}`,
    promptIds: promptOf(promptLength, sharedPrompt ? 0 : index, vocab),
  }));

/** Median wall time of 3 runs; `run` gets the repetition index. */
async function medianSeconds(run: (repetition: number) => Promise<unknown>): Promise<number> {
  const seconds: number[] = [];
  for (let repetition = 0; repetition < 3; repetition++)
    seconds.push((await timed(() => run(repetition))).seconds);
  return seconds.sort((a, b) => a - b)[1]!;
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const started = performance.now();
  const value = await work();
  return { value, seconds: (performance.now() - started) / 1000 };
}

/** Floating-point operations of one forward over `rows` new positions attending to `context` slots. */
function forwardFlops(
  config: ModelConfig,
  rows: number,
  context: number,
  logitRows: number,
  allExperts: boolean,
) {
  const { hiddenSize: h, headDim, numAttentionHeads: heads, numKeyValueHeads: kv } = config;
  const moe = moeLayerIndices(config);
  let flops = 0;
  for (let layer = 0; layer < config.numLayers; layer++) {
    flops += 2 * rows * h * (heads * headDim * 2 + kv * headDim * 2); // q, o, k, v
    flops += 2 * 2 * rows * context * heads * headDim; // scores and weighted values
    if (moe.includes(layer)) {
      const experts = allExperts ? config.numExperts : config.topK;
      flops += 2 * rows * h * config.numExperts + experts * 3 * 2 * rows * h * config.moeIntermediateSize;
    } else {
      flops += 3 * 2 * rows * h * config.intermediateSize;
    }
  }
  return flops + 2 * logitRows * h * config.vocabSize;
}

/** GFLOP/s of onnxruntime's own Gemm at `[rows, inner] × [inner, cols]ᵀ`, the largest shape of the model. */
async function ortGemmGflops(rows: number, inner: number, cols: number): Promise<number> {
  const { encodeModelForGemm } = await import('./micro-models.js');
  const session = await ort.InferenceSession.create(encodeModelForGemm(), {
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' } } }, // as the engine runs
  });
  const a = new ort.Tensor('float32', Float32Array.from({ length: rows * inner }, Math.random), [
    rows,
    inner,
  ]);
  const b = new ort.Tensor('float32', Float32Array.from({ length: cols * inner }, Math.random), [
    cols,
    inner,
  ]);
  for (let warm = 0; warm < 5; warm++) await session.run({ a, b });
  let calls = 0;
  const started = performance.now();
  while (performance.now() - started < 500) {
    await session.run({ a, b });
    calls++;
  }
  const seconds = (performance.now() - started) / 1000;
  await session.release();
  return (2 * rows * inner * cols * calls) / seconds / 1e9;
}

async function engineFor(config: ModelConfig, prefixCache: boolean): Promise<OnnxRolloutEngine> {
  return createOnnxRolloutEngine({
    config,
    weights: createRandomWeights(config, 0),
    precision: 'bf16',
    prefixCache,
  });
}

async function benchConfig(name: string, config: ModelConfig): Promise<void> {
  console.log(
    `\n## ${name}: hidden ${config.hiddenSize}, ${config.numLayers} layers, ${config.numExperts} experts top-${config.topK}, vocab ${config.vocabSize}`,
  );
  const engine = await engineFor(config, false);
  await engine.generate(requestsOf(2, 16, config.vocabSize), sampling({ maxNewTokens: 4 })); // warm-up

  const newTokens = 64;
  const promptLength = 16;
  for (const batch of [1, 8, 32]) {
    const requests = requestsOf(batch, promptLength, config.vocabSize);
    const prefillOnly = await medianSeconds(() => engine.generate(requests, sampling({ maxNewTokens: 1 })));
    const full = await medianSeconds(() => engine.generate(requests, sampling({ maxNewTokens: newTokens })));
    const decodeSeconds = full - prefillOnly;
    const decodeTokens = batch * (newTokens - 1);
    const flops =
      (decodeTokens / batch) * forwardFlops(config, batch, promptLength + newTokens / 2, batch, true);
    console.log(
      `decode batch ${String(batch).padStart(2)}: ${(decodeTokens / decodeSeconds).toFixed(0).padStart(7)} tokens/s (${(flops / decodeSeconds / 1e9).toFixed(2)} GFLOP/s executed)`,
    );
  }

  const prefillLength = 256;
  const prefillSeconds = await medianSeconds(() =>
    engine.generate(requestsOf(4, prefillLength, config.vocabSize), sampling({ maxNewTokens: 1 })),
  );
  const prefillFlops = 4 * forwardFlops(config, prefillLength, prefillLength / 2, 1, true);
  const prefillGflops = prefillFlops / prefillSeconds / 1e9;
  const widest = Math.max(config.moeIntermediateSize, config.intermediateSize, config.vocabSize);
  const gemm = await ortGemmGflops(prefillLength, config.hiddenSize, widest);
  console.log(
    `prefill (4 × ${prefillLength} tokens): ${((4 * prefillLength) / prefillSeconds).toFixed(0)} tokens/s, ${prefillGflops.toFixed(2)} GFLOP/s executed ` +
      `(useful: ${((prefillFlops * forwardFlops(config, 1, 1, 0, false)) / forwardFlops(config, 1, 1, 0, true) / prefillSeconds / 1e9).toFixed(2)})`,
  );
  console.log(
    `ORT Gemm alone at [${prefillLength} × ${config.hiddenSize}] · [${config.hiddenSize} × ${widest}]: ${gemm.toFixed(2)} GFLOP/s → model prefill reaches ${((100 * prefillGflops) / gemm).toFixed(0)}% of it`,
  );
  await engine.dispose();

  // GRPO group: G samples of one 256-token prompt, with and without the prefix cache, in one run. Each
  // repetition uses a new prompt, so the cache starts cold for it; medians of 5 are reported.
  const group = 8;
  const groupSampling = sampling({ maxNewTokens: 32 });
  const groupOf = (repetition: number) =>
    Array.from({ length: group }, (_, index) => ({
      id: `s${index}`,
      groupId: 'g',
      promptIds: promptOf(prefillLength, 100 + repetition, config.vocabSize),
    }));
  const withoutCache = await engineFor(config, false);
  const withCache = await engineFor(config, true);
  for (const warm of [withoutCache, withCache])
    await warm.generate(groupOf(-1), sampling({ maxNewTokens: 2 }));
  // Interleaved repetitions, so that a change in machine load hits all three measurements alike.
  const samples: Array<[number, number, number]> = [];
  for (let repetition = 0; repetition < 5; repetition++) {
    const prefills = await timed(() =>
      withoutCache.generate(groupOf(repetition), sampling({ maxNewTokens: 1 })),
    );
    const uncached = await timed(() => withoutCache.generate(groupOf(repetition), groupSampling));
    const cached = await timed(() => withCache.generate(groupOf(repetition), groupSampling));
    samples.push([prefills.seconds, uncached.seconds, cached.seconds]);
  }
  const median = (column: 0 | 1 | 2) => samples.map((sample) => sample[column]).sort((a, b) => a - b)[2]!;
  const [prefillsOnly, off, on] = [median(0), median(1), median(2)];
  const speedup = off / on;
  // Ideal: the cached run skips G − 1 of the G prompt prefills and nothing else changes.
  const ideal = off / (off - ((group - 1) / group) * prefillsOnly);
  console.log(
    `GRPO group G=${group} of one ${prefillLength}-token prompt, 32 new tokens: ${off.toFixed(3)} s without cache, ${on.toFixed(3)} s with ` +
      `→ speed-up ${speedup.toFixed(2)}×, ideal ${ideal.toFixed(2)}× (G prefills alone: ${prefillsOnly.toFixed(3)} s) → ${(speedup / ideal).toFixed(2)} of ideal`,
  );
  await withoutCache.dispose();
  await withCache.dispose();

  // Against the reference engine (pure TypeScript, recomputes the sequence per token), on a small load.
  if (config.hiddenSize <= 64) {
    const requests = requestsOf(4, 16, config.vocabSize);
    const onnx = await engineFor(config, false);
    const reference = createReferenceRolloutEngine({
      config,
      weights: createRandomWeights(config, 0),
      precision: 'bf16',
    });
    const fast = await timed(() => onnx.generate(requests, sampling({ maxNewTokens: 32 })));
    const slow = await timed(() => reference.generate(requests, sampling({ maxNewTokens: 32 })));
    console.log(
      `4 × 32 tokens: onnx ${fast.seconds.toFixed(3)} s, testkit reference engine ${slow.seconds.toFixed(3)} s → ${(slow.seconds / fast.seconds).toFixed(1)}× faster`,
    );
    await onnx.dispose();
  }
}

/**
 * Cost of sparse experts: top-8 of 64 (and of 128, Qwen3-30B-A3B's count) against top-8 of 8, which does the
 * same active work per token. 4 MoE layers, 16 sequences of a 32-token prompt and 32 new tokens. `dense`
 * runs every expert (cost ∝ experts), `sparse` only the chosen ones, `grouped` experts × the busiest one's load; repetitions are interleaved so that
 * load changes hit every engine alike, and the ratios of each repetition are reported as median [range].
 */
async function benchExpertScaling(
  shape: string,
  hiddenSize: number,
  moeIntermediateSize: number,
  sequences = 16,
) {
  const configOf = (numExperts: number) =>
    createModelConfig({
      vocabSize: 256,
      hiddenSize,
      numLayers: 4,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: hiddenSize / 4,
      numExperts,
      topK: 8,
      moeIntermediateSize,
      normTopKProb: true,
      mlpOnlyLayers: [],
      maxPositionEmbeddings: 1024,
    });
  const variants = [
    { name: 'top-8 of 8', experts: 8, expertCompute: 'auto' },
    { name: 'top-8 of 64, dense', experts: 64, expertCompute: 'dense' },
    { name: 'top-8 of 64, sparse', experts: 64, expertCompute: 'sparse' },
    { name: 'top-8 of 64, grouped', experts: 64, expertCompute: 'grouped' },
    { name: 'top-8 of 128, dense', experts: 128, expertCompute: 'dense' },
    { name: 'top-8 of 128, sparse', experts: 128, expertCompute: 'sparse' },
    { name: 'top-8 of 128, grouped', experts: 128, expertCompute: 'grouped' },
  ] as const;
  const requests = requestsOf(sequences, 32, 256);
  const params = sampling({ maxNewTokens: 32 });
  const engines: OnnxRolloutEngine[] = [];
  for (const variant of variants) {
    const config = configOf(variant.experts);
    const engine = await createOnnxRolloutEngine({
      config,
      weights: createRandomWeights(config, 0),
      precision: 'bf16',
      prefixCache: false,
      expertCompute: variant.expertCompute,
    });
    await engine.generate(requests.slice(0, 2), sampling({ maxNewTokens: 2 })); // warm-up
    engines.push(engine);
  }
  const repetitions = 5;
  const seconds = variants.map(() => [] as number[]);
  const distinct = variants.map(() => 0);
  for (let repetition = 0; repetition < repetitions; repetition++) {
    for (const [index, engine] of engines.entries()) {
      const { value, seconds: elapsed } = await timed(() => engine.generate(requests, params));
      seconds[index]!.push(elapsed);
      distinct[index] = meanExpertsPerDecodeStep(value, 32);
    }
  }
  console.log(
    `
## sparse experts, ${shape}: hidden ${hiddenSize}, moe width ${moeIntermediateSize}, 4 MoE layers, ${sequences} × (32 prompt + 32 new) tokens, bf16`,
  );
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  for (const [index, variant] of variants.entries()) {
    const ratios = seconds[index]!.map((value, repetition) => value / seconds[0]![repetition]!);
    console.log(
      `${variant.name.padEnd(22)} (${engines[index]!.expertCompute.padEnd(6)}): generate ${median(seconds[index]!).toFixed(3)} s → ` +
        `${median(ratios).toFixed(2)}× top-8 of 8 [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}]`,
    );
  }
  // A decode step must read the weights of every expert some row of the batch chose: the floor of the ratio
  // where reading weights, not arithmetic or per-node overhead, dominates.
  const firstOfEachCount = variants.filter(
    (variant, index) => variants.findIndex((other) => other.experts === variant.experts) === index,
  );
  const chosen = firstOfEachCount.map(
    (variant) => `${distinct[variants.indexOf(variant)]!.toFixed(1)} of ${variant.experts}`,
  );
  console.log(
    `a decode step's ${sequences} rows choose on average ${chosen.join(', ')} experts per layer: each step reads that many experts' weights`,
  );
  for (const engine of engines) await engine.dispose();

  // The floor that sets where reading weights dominates: a decode step's expert products alone, in the
  // fewest nodes (one batched MatMul per projection and layer over the touched experts, the rows spread
  // evenly, at least 2 each as in the engine), against top-8 of 8's 8 experts over all rows. Putting these
  // in place of top-8 of 8's own products in its generate time gives the cost no graph of onnxruntime MatMuls
  // goes below.
  const touched = firstOfEachCount.map((variant) => distinct[variants.indexOf(variant)]!);
  const products = await expertProductSeconds(
    touched.map((count, index) => ({
      experts: Math.round(count),
      rows: index === 0 ? sequences : Math.max(2, Math.ceil((sequences * 8) / count)),
    })),
    hiddenSize,
    moeIntermediateSize,
  );
  const decodeSteps = 32;
  const topOf8 = median(seconds[0]!);
  const floors = firstOfEachCount.slice(1).map((variant, index) => {
    const floor = 1 + (decodeSteps * (products[index + 1]! - products[0]!)) / topOf8;
    return `${variant.experts} experts ${(products[index + 1]! / products[0]!).toFixed(2)}× (floor ${floor.toFixed(2)}×)`;
  });
  console.log(
    `a decode step's expert products alone (batched over the touched experts; top-8 of 8: ${(products[0]! * 1e3).toFixed(2)} ms, ${((100 * decodeSteps * products[0]!) / topOf8).toFixed(0)}% of its generate time): ${floors.join(', ')}`,
  );
}

/** Median seconds of one run of each expert-products graph (4 layers of `experts` × `rows` rows), interleaved. */
async function expertProductSeconds(
  shapes: readonly { experts: number; rows: number }[],
  hidden: number,
  width: number,
): Promise<number[]> {
  const { encodeModelForExpertProducts } = await import('./micro-models.js');
  const tensor = (dims: number[]) =>
    new ort.Tensor(
      'float32',
      Float32Array.from(
        { length: dims.reduce((size, extent) => size * extent, 1) },
        () => Math.random() - 0.5,
      ),
      dims,
    );
  const cases = [];
  for (const { experts, rows } of shapes) {
    const session = await ort.InferenceSession.create(encodeModelForExpertProducts(4, hidden, width), {
      graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: '0' } } }, // as the engine runs
    });
    const feeds: Record<string, ort.Tensor> = {};
    for (let layer = 0; layer < 4; layer++) {
      feeds[`x.${layer}`] = tensor([experts, rows, hidden]);
      feeds[`gu.${layer}`] = tensor([experts, hidden, 2 * width]);
      feeds[`d.${layer}`] = tensor([experts, width, hidden]);
    }
    for (let warm = 0; warm < 3; warm++) await session.run(feeds);
    cases.push({ session, feeds, seconds: [] as number[] });
  }
  for (let repetition = 0; repetition < 15; repetition++) {
    for (const entry of cases)
      entry.seconds.push((await timed(() => entry.session.run(entry.feeds))).seconds);
  }
  for (const { session } of cases) await session.release();
  return cases.map(({ seconds }) => [...seconds].sort((a, b) => a - b)[Math.floor(seconds.length / 2)]!);
}

/** Mean number of distinct experts the batch's rows choose per MoE layer at the decode steps. */
function meanExpertsPerDecodeStep(trajectories: readonly Trajectory[], promptLength: number): number {
  let total = 0;
  let count = 0;
  const { moeLayers, topK } = trajectories[0]!.routing!;
  const steps = Math.min(...trajectories.map((trajectory) => trajectory.routing!.positions)) - promptLength;
  for (let step = 0; step < steps; step++) {
    for (let layer = 0; layer < moeLayers; layer++) {
      const chosen = new Set<number>();
      for (const { routing } of trajectories) {
        const start = ((promptLength + step) * moeLayers + layer) * topK;
        for (let k = 0; k < topK; k++) chosen.add(routing!.experts[start + k]!);
      }
      total += chosen.size;
      count++;
    }
  }
  return total / count;
}

/**
 * What the fallback costs: the same generation on onnxruntime-node (native) and onnxruntime-web (its
 * WebAssembly CPU build, the runtime a plain `npm install` without the optional peer gets), on the demo
 * preset's model (hidden 64, 4 layers with layer 0 dense, 16 experts top-2), 16 sequences × 32 new tokens.
 */
async function benchRuntimes(): Promise<void> {
  const config = demoShapedMoeConfig(32);
  const weights = createRandomWeights(config, 0);
  const requests = requestsOf(16, 12, config.vocabSize);
  // No EOS: every sequence generates all 32 tokens.
  const params = sampling({ maxNewTokens: 32, stopTokenIds: [] });
  const runtimes = ['node', 'web'] as const;
  const engines: OnnxRolloutEngine[] = [];
  for (const runtime of runtimes) {
    const engine = await createOnnxRolloutEngine({
      config,
      weights,
      precision: 'bf16',
      prefixCache: false,
      runtime,
    });
    await engine.generate(requests.slice(0, 2), sampling({ maxNewTokens: 2 })); // warm-up
    engines.push(engine);
  }
  const seconds = runtimes.map(() => [] as number[]);
  for (let repetition = 0; repetition < 3; repetition++) {
    for (const [index, engine] of engines.entries())
      seconds[index]!.push((await timed(() => engine.generate(requests, params))).seconds);
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const ratios = seconds[1]!.map((value, repetition) => value / seconds[0]![repetition]!);
  console.log(
    '\n## runtime fallback: demo model, 16 sequences × (12 prompt + 32 new) tokens, bf16, no prefix cache',
  );
  for (const [index, engine] of engines.entries())
    console.log(`${engine.runtimeSummary}: generate ${median(seconds[index]!).toFixed(3)} s`);
  console.log(
    `onnxruntime-web / onnxruntime-node: ${median(ratios).toFixed(2)}× the time [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}] (3 interleaved repetitions)`,
  );
  for (const engine of engines) await engine.dispose();
}

console.log(
  `# @moerl/backend-onnx bench — ${os.cpus()[0]?.model ?? 'unknown CPU'} × ${os.cpus().length}, Node ${process.version}, onnxruntime-node ${ort.env.versions.common}`,
);
// `pnpm bench -- --experts` runs only the sparse-experts comparison, `--runtimes` only the runtime fallback.
if (process.argv.includes('--runtimes')) {
  await benchRuntimes();
} else {
  if (!process.argv.includes('--experts')) {
    await benchConfig('demo config', demoConfig);
    await benchConfig('wide config', wideConfig);
    await benchRuntimes();
  }
  // `--sequences=N`: the same comparison at a rollout-sized batch, where each expert gets more rows.
  const sequences = Number(
    process.argv.find((argument) => argument.startsWith('--sequences='))?.slice('--sequences='.length) ?? 16,
  );
  await benchExpertScaling('wide', 128, 128, sequences);
  await benchExpertScaling('small', 64, 32, sequences);
}
