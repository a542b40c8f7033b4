/*
 * Training throughput of the tfjs trainer (run: `pnpm bench`). Prints figures and ratios measured in one
 * run; asserts nothing. Sections:
 *   1. tokens/s of trainStep on the demo config per available tfjs backend, free routing vs R3 replay
 *      (interleaved, so drift hits both alike; best of STEPS runs each), and the replay overhead;
 *   2. gathered vs dense-masked experts on a 16-expert top-2 config;
 *   3. the same model step in PyTorch CPU (python3 + torch), when available, as an outside reference;
 *   4. whether cost follows the active experts: top-8 of 64 and of 128 against top-8 of 8 (the same active
 *      compute) at a small shape (the demo's: per-expert overhead dominates) and a wide one;
 *   5. tfjs-wasm's batched products (attention's) by moerl's SIMD kernel against tfjs-wasm's own scalar
 *      loop, in the same trainer, interleaved (the same bits either way).
 * `--section=4` (or `--section=2,4`) runs only those sections; `--sequences=N` sets the batch (default 8).
 */
// Loaded first, so that section 5 can keep tfjs-wasm's own BatchMatMul before moerl puts its kernel in front.
import '@tensorflow/tfjs-backend-wasm';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  createModelConfig,
  createRandom,
  type ModelConfig,
  type RoutingRecord,
  type TrainingBatch,
} from '@moerl/core';
import {
  createRandomWeights,
  demoShapedMoeConfig,
  negativeMeanLogprobObjective,
  smallMoeConfig,
} from '@moerl/testkit';
import * as tf from '@tensorflow/tfjs-core';
import {
  attachRouting,
  createTfjsPolicyTrainer,
  type ExpertComputation,
  TFJS_BACKEND_ORDER,
  type TfjsBackendName,
  type TfjsPolicyTrainer,
} from '../src/index.js';

// testkit's small MoE: 4 layers (layer 0 dense), 3 MoE layers of 8 experts, top-2.
const demoConfig = smallMoeConfig;

const wideConfig = createModelConfig({
  vocabSize: 64,
  hiddenSize: 64,
  numLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  numExperts: 16,
  topK: 2,
  moeIntermediateSize: 64,
  normTopKProb: true,
});

const option = (name: string) =>
  process.argv.find((argument) => argument.startsWith(`--${name}=`))?.slice(name.length + 3);
/** `--sequences=N`: sequences per batch (default 8); larger batches amortise the per-op cost of many experts. */
const SEQUENCES = Number(option('sequences') ?? 8);
const PROMPT = 16;
const RESPONSE = 48;
const STEPS = Number(process.env.BENCH_STEPS ?? 10);

function makeBatch(config: ModelConfig): TrainingBatch {
  const random = createRandom(42);
  const ids = (length: number) => Int32Array.from({ length }, () => random.nextInt(config.vocabSize));
  return {
    sequences: Array.from({ length: SEQUENCES }, () => ({
      promptIds: ids(PROMPT),
      responseIds: ids(RESPONSE),
    })),
  };
}

const fedTokens = SEQUENCES * (PROMPT + RESPONSE - 1);

async function makeTrainer(
  config: ModelConfig,
  backend: TfjsBackendName,
  experts: ExpertComputation = 'gathered',
): Promise<TfjsPolicyTrainer> {
  return createTfjsPolicyTrainer({
    config,
    weights: createRandomWeights(config, 1),
    learningRate: 1e-4,
    maxGradNorm: 1,
    backendOptions: { backends: [backend], experts },
  });
}

/**
 * Routing as an fp32 engine holding the trainer's weights would record it (a stand-in for R3's input), so
 * free and replayed steps route alike and the difference measures the replay mechanism itself.
 */
async function engineRouting(config: ModelConfig, backend: TfjsBackendName, batch: TrainingBatch) {
  const engine = await createTfjsPolicyTrainer({
    config,
    weights: createRandomWeights(config, 1),
    backendOptions: { backends: [backend] },
  });
  const { routing } = await engine.logprobs(batch, { routing: 'free' });
  await engine.dispose();
  return routing as RoutingRecord[];
}

async function timeStep(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return (performance.now() - start) / 1000;
}

// The fastest of several interleaved runs: on a shared machine, contention only ever adds time.
const best = (values: number[]) => Math.min(...values);

async function backendSection(): Promise<void> {
  console.log(
    `\n## 1. trainStep on the demo config (${SEQUENCES} × ${PROMPT + RESPONSE} tokens, ${STEPS} steps each)`,
  );
  console.log('backend      | free tok/s | R3 tok/s | R3 overhead');
  const batch = makeBatch(demoConfig);
  const objective = negativeMeanLogprobObjective();
  const rates: Record<string, number> = {};
  for (const backend of TFJS_BACKEND_ORDER) {
    let trainer: TfjsPolicyTrainer;
    try {
      trainer = await makeTrainer(demoConfig, backend);
    } catch (error) {
      const lines = (error as Error).message.split('\n');
      console.log(`${backend.padEnd(12)} | unavailable: ${(lines[1] ?? lines[0]!).trim().slice(0, 100)}`);
      continue;
    }
    const replayBatch = attachRouting(batch, await engineRouting(demoConfig, backend, batch));
    for (let warm = 0; warm < 2; warm++) {
      await trainer.trainStep(batch, objective, { routing: 'free' });
      await trainer.trainStep(replayBatch, objective, { routing: 'replay' });
    }
    // Free, replay, free again: the two free series give the noise floor of this machine right now.
    const free: number[] = [];
    const replay: number[] = [];
    const freeAgain: number[] = [];
    for (let step = 0; step < STEPS; step++) {
      free.push(await timeStep(() => trainer.trainStep(batch, objective, { routing: 'free' })));
      replay.push(await timeStep(() => trainer.trainStep(replayBatch, objective, { routing: 'replay' })));
      freeAgain.push(await timeStep(() => trainer.trainStep(batch, objective, { routing: 'free' })));
    }
    await trainer.dispose();
    const freeSeconds = Math.min(best(free), best(freeAgain));
    const freeRate = fedTokens / freeSeconds;
    const replayRate = fedTokens / best(replay);
    rates[backend] = freeRate;
    const overhead = (best(replay) / freeSeconds - 1) * 100;
    const noise = Math.abs(best(freeAgain) / best(free) - 1) * 100;
    console.log(
      `${backend.padEnd(12)} | ${freeRate.toFixed(0).padStart(10)} | ${replayRate.toFixed(0).padStart(8)} | ${overhead >= 0 ? '+' : ''}${overhead.toFixed(1)}% (free vs free: ±${noise.toFixed(1)}%)`,
    );
  }
  if (rates['tfjs-wasm'] !== undefined && rates['tfjs-cpu'] !== undefined) {
    console.log(`wasm / cpu throughput: ${(rates['tfjs-wasm'] / rates['tfjs-cpu']).toFixed(2)}×`);
  }
}

async function expertsSection(backend: TfjsBackendName): Promise<number> {
  console.log(`\n## 2. gathered vs dense-masked experts (16 experts, top-2, hidden 64, ${backend})`);
  const batch = makeBatch(wideConfig);
  const objective = negativeMeanLogprobObjective();
  const kinds = ['gathered', 'dense'] as const;
  const seconds: Record<ExpertComputation, number[]> = { gathered: [], dense: [] };
  const trainers = {
    gathered: await makeTrainer(wideConfig, backend, 'gathered'),
    dense: await makeTrainer(wideConfig, backend, 'dense'),
  };
  for (const kind of kinds) await trainers[kind].trainStep(batch, objective, { routing: 'free' });
  for (let step = 0; step < STEPS; step++) {
    for (const kind of kinds) {
      seconds[kind].push(
        await timeStep(() => trainers[kind].trainStep(batch, objective, { routing: 'free' })),
      );
    }
  }
  for (const trainer of Object.values(trainers)) await trainer.dispose();
  const [gathered, dense] = kinds.map((kind) => best(seconds[kind]));
  console.log(
    kinds.map((kind) => `${kind}: ${(fedTokens / best(seconds[kind])).toFixed(0)} tok/s`).join(', '),
  );
  console.log(`dense / gathered step time: ${(dense! / gathered!).toFixed(2)}×`);
  return gathered!;
}

const TORCH_STEP = `
import sys, time, torch, torch.nn.functional as F
torch.manual_seed(0); torch.set_num_threads(1)
V,H,L,NH,NKV,E,K,I,D = 64,64,2,4,2,16,2,64,16
S,T = ${SEQUENCES}, ${PROMPT + RESPONSE - 1}
def p(*shape): return torch.nn.Parameter(torch.randn(*shape) / shape[-1] ** 0.5)
P = dict(emb=p(V,H), head=p(V,H), norm=torch.nn.Parameter(torch.ones(H)))
for l in range(L):
  P.update({f'{l}.q':p(NH*D,H), f'{l}.k':p(NKV*D,H), f'{l}.v':p(NKV*D,H), f'{l}.o':p(H,NH*D), f'{l}.r':p(E,H),
            f'{l}.g':p(E,I,H), f'{l}.u':p(E,I,H), f'{l}.d':p(E,H,I), f'{l}.n1':torch.nn.Parameter(torch.ones(H)),
            f'{l}.n2':torch.nn.Parameter(torch.ones(H)), f'{l}.qn':torch.nn.Parameter(torch.ones(D)), f'{l}.kn':torch.nn.Parameter(torch.ones(D))})
opt = torch.optim.AdamW(P.values(), lr=1e-4)
def rms(x,w): return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w
inv = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D)); ang = torch.arange(T)[:,None] * inv[None]
cos, sin = ang.cos()[None,:,None,:], ang.sin()[None,:,None,:]
def rope(x): a,b = x.chunk(2,-1); return torch.cat([a*cos-b*sin, b*cos+a*sin], -1)
tok = torch.randint(0,V,(S,T+1))
mask = torch.full((T,T), float('-inf')).triu(1)
def step():
  x = P['emb'][tok[:,:-1]]
  for l in range(L):
    h = rms(x, P[f'{l}.n1'])
    q = rope(rms((h @ P[f'{l}.q'].T).view(S,T,NH,D), P[f'{l}.qn']))
    k = rope(rms((h @ P[f'{l}.k'].T).view(S,T,NKV,D), P[f'{l}.kn']))
    v = (h @ P[f'{l}.v'].T).view(S,T,NKV,D)
    k = k.repeat_interleave(NH//NKV, 2); v = v.repeat_interleave(NH//NKV, 2)
    sc = (q.transpose(1,2) @ k.transpose(1,2).transpose(-1,-2)) / D ** 0.5 + mask
    a = sc.softmax(-1) @ v.transpose(1,2)
    x = x + a.transpose(1,2).reshape(S,T,NH*D) @ P[f'{l}.o'].T
    h = rms(x, P[f'{l}.n2']).reshape(S*T,H)
    prob = (h @ P[f'{l}.r'].T).softmax(-1); w, ids = prob.topk(K, -1); w = w / w.sum(-1, keepdim=True)
    out = torch.zeros_like(h)
    for e in range(E):
      rows, slot = (ids == e).nonzero(as_tuple=True)
      if len(rows) == 0: continue
      he = h[rows]; y = (F.silu(he @ P[f'{l}.g'][e].T) * (he @ P[f'{l}.u'][e].T)) @ P[f'{l}.d'][e].T
      out.index_add_(0, rows, y * w[rows, slot][:,None])
    x = x + out.view(S,T,H)
  logits = rms(x, P['norm']) @ P['head'].T
  loss = F.cross_entropy(logits.reshape(-1,V), tok[:,1:].reshape(-1))
  opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(P.values(), 1.0); opt.step()
for _ in range(2): step()
ts = []
for _ in range(${STEPS}):
  t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0)
print(min(ts))
`;

function torchSection(tfjsGatheredSeconds: number): void {
  console.log(
    '\n## 3. outside reference: the same 16-expert step in PyTorch CPU (1 thread, like single-threaded wasm)',
  );
  const script = join(tmpdir(), `moerl-torch-bench-${process.pid}.py`);
  writeFileSync(script, TORCH_STEP);
  // Debian's python3-torch lives under /usr/bin/python3, which a pyenv python3 on PATH may shadow.
  const interpreters = [process.env.PYTHON, '/usr/bin/python3', 'python3'].filter(
    (name): name is string => name !== undefined,
  );
  let seconds = Number.NaN;
  let failure = 'no python3';
  for (const python of interpreters) {
    const result = spawnSync(python, [script], { encoding: 'utf8', timeout: 300_000 });
    seconds = Number(result.stdout?.trim());
    if (result.status === 0 && Number.isFinite(seconds)) {
      const version = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], {
        encoding: 'utf8',
      });
      console.log(`${python}, torch ${version.stdout.trim()}`);
      break;
    }
    failure = (result.stderr ?? String(result.error)).trim().split('\n').pop() ?? failure;
    seconds = Number.NaN;
  }
  if (!(seconds > 0)) {
    console.log(`PyTorch unavailable (${failure})`);
    return;
  }
  console.log(`PyTorch: ${(fedTokens / seconds).toFixed(0)} tok/s`);
  console.log(`tfjs (gathered) / PyTorch step time: ${(tfjsGatheredSeconds / seconds).toFixed(2)}×`);
}

const SHAPES = {
  small: { hiddenSize: 64, moeIntermediateSize: 32 },
  wide: { hiddenSize: 128, moeIntermediateSize: 128 },
} as const;

/** `trainStep` and `logprobs` seconds (best of interleaved runs) of top-8-of-`experts` at one shape. */
async function activeExpertsSection(backend: TfjsBackendName): Promise<void> {
  console.log(
    `\n## 4. cost follows active experts: top-8 of N vs top-8 of 8 (4 layers, 3 MoE; ${SEQUENCES} × ${PROMPT + RESPONSE} tokens; ${backend})`,
  );
  console.log('shape | experts | trainStep s | ×(8 of 8) | logprobs s | ×(8 of 8)');
  const objective = negativeMeanLogprobObjective();
  for (const [shape, sizes] of Object.entries(SHAPES)) {
    const trainers: { experts: number; trainer: TfjsPolicyTrainer; batch: TrainingBatch }[] = [];
    for (const experts of [8, 64, 128]) {
      const config = createModelConfig({
        vocabSize: 64,
        numLayers: 4,
        numAttentionHeads: 4,
        numKeyValueHeads: 2,
        numExperts: experts,
        topK: 8,
        mlpOnlyLayers: [0],
        normTopKProb: true,
        ...sizes,
      });
      trainers.push({ experts, trainer: await makeTrainer(config, backend), batch: makeBatch(config) });
    }
    const train = new Map<number, number[]>();
    const score = new Map<number, number[]>();
    for (const { experts, trainer, batch } of trainers) {
      await trainer.trainStep(batch, objective, { routing: 'free' });
      train.set(experts, []);
      score.set(experts, []);
    }
    for (let step = 0; step < STEPS; step++) {
      for (const { experts, trainer, batch } of trainers) {
        train
          .get(experts)!
          .push(await timeStep(() => trainer.trainStep(batch, objective, { routing: 'free' })));
        score.get(experts)!.push(await timeStep(() => trainer.logprobs(batch, { routing: 'free' })));
      }
    }
    const base = { train: best(train.get(8)!), score: best(score.get(8)!) };
    for (const { experts, trainer } of trainers) {
      const t = best(train.get(experts)!);
      const l = best(score.get(experts)!);
      console.log(
        `${shape.padEnd(5)} | ${String(experts).padStart(7)} | ${t.toFixed(3).padStart(11)} | ${(t / base.train).toFixed(2).padStart(9)} | ${l.toFixed(3).padStart(10)} | ${(l / base.score).toFixed(2).padStart(9)}`,
      );
      await trainer.dispose();
    }
  }
}

/**
 * trainStep and logprobs with tfjs-wasm's batched products run by moerl's SIMD kernel and by tfjs-wasm's
 * own loop, swapped in the kernel registry between interleaved steps of one trainer: the demo's shape
 * (128 short sequences, top-2 of 16) and `SEQUENCES` × 64 tokens.
 */
async function batchedProductSection(tfjsBatchMatMul: tf.KernelConfig): Promise<void> {
  const config = demoShapedMoeConfig(40);
  console.log(
    `\n## 5. batched products (attention) on tfjs-wasm: moerl's SIMD kernel vs tfjs-wasm's loop (the demo's model shape)`,
  );
  console.log('batch            | trainStep tfjs / SIMD s | ×    | logprobs tfjs / SIMD s | ×');
  for (const [label, count, prompt, response] of [
    ['128 × 21 (demo)', 128, 12, 10],
    [`${SEQUENCES} × 64`, SEQUENCES, PROMPT, RESPONSE],
  ] as const) {
    const trainer = await makeTrainer(config, 'tfjs-wasm');
    const simd = tf.getKernel('BatchMatMul', 'wasm')!;
    const use = (kernel: tf.KernelConfig) => {
      tf.unregisterKernel('BatchMatMul', 'wasm');
      tf.registerKernel(kernel);
    };
    const random = createRandom(7);
    const ids = (length: number) => Int32Array.from({ length }, () => random.nextInt(config.vocabSize));
    const batch: TrainingBatch = {
      sequences: Array.from({ length: count }, () => ({
        promptIds: ids(prompt),
        responseIds: ids(response),
      })),
    };
    const objective = negativeMeanLogprobObjective();
    await trainer.trainStep(batch, objective, { routing: 'free' });
    const times = {
      tfjs: { train: [] as number[], score: [] as number[] },
      simd: { train: [] as number[], score: [] as number[] },
    };
    for (let step = 0; step < STEPS; step++) {
      for (const [name, kernel] of [
        ['tfjs', tfjsBatchMatMul],
        ['simd', simd],
      ] as const) {
        use(kernel);
        times[name].train.push(
          await timeStep(() => trainer.trainStep(batch, objective, { routing: 'free' })),
        );
        times[name].score.push(await timeStep(() => trainer.logprobs(batch, { routing: 'free' })));
      }
    }
    use(simd);
    await trainer.dispose();
    const [train, score] = [best(times.tfjs.train), best(times.tfjs.score)];
    const [simdTrain, simdScore] = [best(times.simd.train), best(times.simd.score)];
    console.log(
      `${label.padEnd(16)} | ${train.toFixed(3)} / ${simdTrain.toFixed(3)}           | ${(train / simdTrain).toFixed(2)} | ${score.toFixed(3)} / ${simdScore.toFixed(3)}          | ${(score / simdScore).toFixed(2)}`,
    );
  }
}

// tfjs-wasm's own BatchMatMul, kept before the first activation puts moerl's in front of it.
const tfjsBatchMatMul = tf.getKernel('BatchMatMul', 'wasm');

const sections = new Set(
  (
    process.argv.find((argument) => argument.startsWith('--section='))?.slice('--section='.length) ??
    '1,2,3,4,5'
  )
    .split(',')
    .map(Number),
);

console.log(
  `moerl backend-tfjs training benchmark — node ${process.version}, ${process.platform}/${process.arch}`,
);
if (sections.has(1)) await backendSection();
if (sections.has(2) || sections.has(3)) {
  const gathered = await expertsSection('tfjs-wasm');
  if (sections.has(3)) torchSection(gathered);
}
if (sections.has(4)) await activeExpertsSection('tfjs-wasm');
if (sections.has(5) && tfjsBatchMatMul !== undefined) await batchedProductSection(tfjsBatchMatMul);
