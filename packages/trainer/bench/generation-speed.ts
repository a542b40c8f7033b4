/**
 * Generation speed: the onnx engine (KV cache, batched decode) against producing the same tokens' next-token
 * distributions with the tfjs model, which has no KV cache and so runs a full forward per new token.
 * Both sides compute the full-vocabulary distribution of every generated position of the same batch;
 * sampling itself is negligible. Prints the ratio measured in one run (median of interleaved rounds).
 */
import { createOnnxRolloutEngine } from '@moerl/backend-onnx';
import { createTfjsPolicyTrainer } from '@moerl/backend-tfjs';
import { createRandom } from '@moerl/core';
import { createRandomWeights, demoShapedMoeConfig } from '@moerl/testkit';

const quick = process.argv.includes('--quick');
const config = demoShapedMoeConfig(16, 64);
const weights = createRandomWeights(config, 1);
const random = createRandom(2);
const batch = 8;
const newTokens = 12;
const prompts = Array.from({ length: batch }, () =>
  Int32Array.from({ length: 8 }, () => 3 + random.nextInt(13)),
);

const engine = await createOnnxRolloutEngine({ config, weights, precision: 'fp32', prefixCache: false });
const trainer = await createTfjsPolicyTrainer({
  config,
  weights,
  backendOptions: { backends: ['tfjs-wasm'], onWarning: () => {} },
});
const sampling = { temperature: 1, topP: 1, topK: 0, maxNewTokens: newTokens, stopTokenIds: [], seed: 0 };
const requests = prompts.map((promptIds, index) => ({ id: `r${index}`, groupId: `g${index}`, promptIds }));

async function onnxRound(): Promise<{ ms: number; responses: Int32Array[] }> {
  const start = performance.now();
  const trajectories = await engine.generate(requests, sampling);
  return {
    ms: performance.now() - start,
    responses: trajectories.map((trajectory) => trajectory.responseIds),
  };
}

async function tfjsRound(responses: readonly Int32Array[]): Promise<number> {
  const start = performance.now();
  // Token t needs a forward over prompt + the t tokens before it: no KV cache to reuse.
  for (let length = 1; length <= newTokens; length++) {
    await trainer.logprobs(
      {
        sequences: prompts.map((promptIds, index) => ({
          promptIds,
          responseIds: responses[index]!.subarray(0, length),
        })),
      },
      { routing: 'free' },
    );
  }
  return performance.now() - start;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const onnxTimes: number[] = [];
const tfjsTimes: number[] = [];
const rounds = quick ? 3 : 7;
await onnxRound();
await tfjsRound((await onnxRound()).responses); // warm-up of both
for (let round = 0; round < rounds; round++) {
  const onnx = await onnxRound();
  onnxTimes.push(onnx.ms);
  tfjsTimes.push(await tfjsRound(onnx.responses));
}
const tokens = batch * newTokens;
console.log(
  `generation of ${batch} × ${newTokens} tokens, demo-sized MoE (hidden 64, 16 experts top-2), median of ${rounds} rounds`,
);
console.log(
  `  onnx engine (KV cache, batched decode): ${median(onnxTimes).toFixed(1)} ms = ${((tokens / median(onnxTimes)) * 1000).toFixed(0)} tok/s`,
);
console.log(
  `  tfjs model (${trainer.backend.name}, full forward per token): ${median(tfjsTimes).toFixed(1)} ms = ${((tokens / median(tfjsTimes)) * 1000).toFixed(0)} tok/s`,
);
console.log(`  onnx / tfjs speed: ${(median(tfjsTimes) / median(onnxTimes)).toFixed(1)}×`);
await engine.dispose();
await trainer.dispose();
