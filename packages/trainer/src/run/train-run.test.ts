import { mkdirSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHfConfigFile, writeSafetensorsFile } from '@moerl/core';
import { createRandomWeights } from '@moerl/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyRun } from '../__fixtures__/tiny-run.js';
import { withoutTimings } from '../__fixtures__/without-timings.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import type { StepMetrics } from '../metrics/step-metrics.js';
import { createReverseTask } from '../tasks/builtin-tasks.js';
import { defineTask } from '../tasks/task.js';
import { createTask, registerTask } from '../tasks/task-registry.js';
import { modelConfigFor, sharedTrainerOptions } from './model-setup.js';
import { readMetrics } from './run-directory.js';
import { readSamples } from './sample-log.js';
import { trainRun } from './train-run.js';

const tiny = tinyRun;

let root = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'moerl-run-'));
});
afterAll(async () => rm(root, { recursive: true, force: true }));

/** The metrics that must not depend on wall time or on what happened to be in the prefix cache. */
function deterministic(row: StepMetrics) {
  const { prefixCacheHitRate: _cache, ...rest } = withoutTimings(row);
  return rest;
}

describe('trainRun', () => {
  it('runs warm start and RL steps with R3, writing config, finite metrics and a checkpoint', async () => {
    const config = await resolveRunConfig({ config: { ...tiny, replay: 'R3' } });
    const directory = join(root, 'r3');
    const lines: string[] = [];
    const result = await trainRun({ config, directory, events: { log: (line) => lines.push(line) } });
    expect(result.metrics.map((row) => row.step)).toEqual([1, 2, 3, 4]);
    for (const row of result.metrics) {
      for (const key of [
        'rewardMean',
        'accuracy',
        'loss',
        'gradNorm',
        'klFree',
        'klReplay',
        'responseLength',
      ] as const) {
        expect(Number.isFinite(row[key]), `${key} at step ${row.step}`).toBe(true);
      }
      expect(row.routingDisagreement).toHaveLength(2);
      expect(row.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(row.learningRate).toBeGreaterThan(0);
      expect(row.learningRate).toBeLessThanOrEqual(config.train.learningRate);
      expect(Number.isFinite(row.objective?.clipFraction)).toBe(true);
    }
    expect(result.metrics.filter((row) => row.evalAccuracy !== undefined).map((row) => row.step)).toEqual([
      2, 4,
    ]);
    // Accuracy on problems the warm start trained on is measured at the same points, and before RL.
    expect(result.metrics.filter((row) => row.seenEvalAccuracy !== undefined).map((row) => row.step)).toEqual(
      [2, 4],
    );
    expect(Number.isFinite(result.initialSeenEvalAccuracy)).toBe(true);
    expect(
      lines.some((line) =>
        /the warm start saw \d+ distinct problems \(.*% of the task's \d+ problems\)/.test(line),
      ),
    ).toBe(true);
    expect(await readMetrics(join(directory, 'metrics.jsonl'))).toEqual(result.metrics);
    expect(JSON.parse(await readFile(join(directory, 'config.json'), 'utf8'))).toEqual(config);
    expect(await readdir(join(directory, 'checkpoints'))).toEqual(['latest.json', 'step-000004']);
    expect(lines.some((line) => line.includes('reference'))).toBe(true);
    // Two rollouts a step as text (log.samples), one per prompt; re-encoding a sample's text scores it as
    // the run did.
    const samples = await readSamples(join(directory, 'samples.jsonl'));
    expect(samples.map((row) => row.step)).toEqual([1, 1, 2, 2, 3, 3, 4, 4]);
    const task = createTask(config.task.name);
    for (const row of samples) {
      expect(row.prompt.length).toBeGreaterThan(0);
      const ids = [
        ...task.tokenizer.encode(row.response),
        ...(row.finishReason === 'stop' ? [task.tokenizer.eosId] : []),
      ];
      const { prompt, answer } = {
        prompt: row.prompt,
        answer: [...row.prompt.slice(0, -1)].reverse().join(''),
      };
      expect(task.score({ prompt, answer }, ids).reward).toBe(row.reward);
    }
  });

  it('writes metrics in the background: every row on disk at the end, and a failed write stops the run', async () => {
    const config = await resolveRunConfig({ config: { ...tiny, replay: 'R3' } });
    const directory = join(root, 'background-logs');
    const result = await trainRun({ config, directory });
    expect(await readMetrics(join(directory, 'metrics.jsonl'))).toEqual(result.metrics);
    expect((await readSamples(join(directory, 'samples.jsonl'))).at(-1)?.step).toBe(result.metrics.length);
    // After step 1 the metrics path becomes a directory: that step's write fails, and the run says so.
    const broken = join(root, 'broken-logs');
    const metricsPath = join(broken, 'metrics.jsonl');
    const step = (row: StepMetrics) => {
      if (row.step !== 1) return;
      rmSync(metricsPath);
      mkdirSync(metricsPath);
    };
    await expect(trainRun({ config, directory: broken, events: { step } })).rejects.toMatchObject({
      code: 'IO_ERROR',
      message: expect.stringContaining('metrics.jsonl'),
    });
  });

  it('resumes after a stop and gives the same metrics as an uninterrupted run', async () => {
    const config = await resolveRunConfig({ config: { ...tiny, replay: 'R2' } });
    const whole = await trainRun({ config, directory: join(root, 'whole') });
    const interrupted = join(root, 'interrupted');
    const first = await trainRun({ config, directory: interrupted, stopAfterStep: 2 });
    expect(first.stoppedEarly).toBe(true);
    expect(first.metrics).toHaveLength(2);
    const resumed = await trainRun({ config, directory: interrupted, resume: true });
    expect(resumed.metrics.map(deterministic)).toEqual(whole.metrics.map(deterministic));
    // The samples of the steps before the stop are kept, none repeated.
    expect(await readSamples(join(interrupted, 'samples.jsonl'))).toEqual(
      await readSamples(join(root, 'whole', 'samples.jsonl')),
    );
    // A different config is refused rather than mixed into the same metrics.
    const other = await resolveRunConfig({ config: { ...tiny, replay: 'R3' } });
    await expect(trainRun({ config: other, directory: interrupted, resume: true })).rejects.toThrow(
      /different config than it was started with/,
    );
  });

  it('train.microBatchSize reaches the tfjs trainer: passes of 2 sequences give the run of whole mini-batches', async () => {
    // No load-balancing loss: it is computed per pass (as Hugging Face computes it per forward), so it
    // legitimately changes with the micro-batch; the objective's loss and gradient must not.
    const base = {
      ...tiny,
      train: { ...tiny.train, steps: 2, routerAuxLossCoefficient: 0 },
      backends: { trainer: 'tfjs-wasm', engine: 'onnx' },
    };
    const whole = await trainRun({
      config: await resolveRunConfig({ config: base }),
      directory: join(root, 'micro-whole'),
    });
    const microConfig = await resolveRunConfig({
      config: { ...base, train: { ...base.train, microBatchSize: 2 } },
    });
    // What every trainer of the run (warm start, RL, reference) is created with.
    expect(sharedTrainerOptions(microConfig).microBatchSize).toBe(2);
    expect(sharedTrainerOptions(await resolveRunConfig({ config: base }))).not.toHaveProperty(
      'microBatchSize',
    );
    const micro = await trainRun({ config: microConfig, directory: join(root, 'micro-2') });
    micro.metrics.forEach((row, index) => {
      const other = whole.metrics[index]!;
      // Accumulating gradients over passes sums in another order: equal up to float rounding.
      expect(row.loss).toBeCloseTo(other.loss, 5);
      expect(row.gradNorm).toBeCloseTo(other.gradNorm, 4);
      expect(row.klReplay).toBeCloseTo(other.klReplay, 6);
    });
  });

  it('imports plugins first, so a config can name an objective an outside package registers', async () => {
    const plugin = new URL('../__fixtures__/plugin-objective.ts', import.meta.url).href;
    const config = await resolveRunConfig({
      config: {
        ...tiny,
        plugins: [plugin],
        algorithm: { objective: 'test-plugin-reinforce' },
        train: { steps: 1 },
      },
    });
    const { pluginCalls } = (await import(plugin)) as { pluginCalls: { evaluate: number } };
    const before = pluginCalls.evaluate;
    const result = await trainRun({ config, directory: join(root, 'plugin') });
    expect(result.metrics).toHaveLength(1);
    expect(pluginCalls.evaluate - before).toBe(2); // one evaluation per mini-batch
    // The objective's own metrics reach metrics.jsonl, averaged over the step's updates.
    expect(result.metrics[0]!.objective?.pluginTokens).toBeGreaterThan(0);
  });

  it('names a plugin it cannot import', async () => {
    const config = await resolveRunConfig({ config: { ...tiny, plugins: ['moerl-no-such-plugin'] } });
    await expect(trainRun({ config, directory: join(root, 'bad-plugin') })).rejects.toThrow(
      /plugins: cannot import "moerl-no-such-plugin"/,
    );
  });

  it('adds a KL term against the warm-started policy, kept on disk so a resumed run gets the same reference', async () => {
    // A task and warm start that give varied rewards, and a step size that moves the policy visibly.
    const base = {
      ...tiny,
      task: { name: 'sort-digits', formatReward: 0.5 },
      warmStart: { steps: 30, batchSize: 8 },
      train: { steps: 2, learningRate: 0.05 },
      eval: { every: 0, size: 4 },
    };
    const withKl = await resolveRunConfig({ config: { ...base, algorithm: { klCoefficient: 0.5 } } });
    const withoutKl = await resolveRunConfig({ config: base });
    const kl = await trainRun({ config: withKl, directory: join(root, 'kl') });
    const plain = await trainRun({ config: withoutKl, directory: join(root, 'no-kl') });
    expect(await readdir(join(root, 'kl'))).toContain('reference.safetensors');
    // Step 1 starts at the reference: KL and its gradient are 0, so both runs take the same step and sample
    // the same step-2 rollouts; there the KL against the moved policy adds to the loss.
    expect(kl.metrics[0]!.loss).toBeCloseTo(plain.metrics[0]!.loss, 9);
    expect(kl.metrics[1]!.rewardMean).toBe(plain.metrics[1]!.rewardMean);
    expect(kl.metrics[1]!.loss).toBeGreaterThan(plain.metrics[1]!.loss + 1e-6);
    const interrupted = join(root, 'kl-interrupted');
    await trainRun({ config: withKl, directory: interrupted, stopAfterStep: 1 });
    const resumed = await trainRun({ config: withKl, directory: interrupted, resume: true });
    expect(resumed.metrics.map(deterministic)).toEqual(kl.metrics.map(deterministic));
  });

  it('frozen: samples and measures every step but never updates, so greedy accuracy stays where it started', async () => {
    const config = await resolveRunConfig({
      config: { ...tiny, replay: 'R3', train: { ...tiny.train, frozen: true } },
    });
    const result = await trainRun({ config, directory: join(root, 'frozen') });
    expect(result.metrics).toHaveLength(4);
    for (const row of result.metrics) {
      expect(row.loss).toBeNaN();
      expect(Number.isFinite(row.klReplay)).toBe(true);
      expect(row.tisClipFraction).toBeGreaterThanOrEqual(0);
      // Synchronous: every step replays routes of the weights the trainer holds.
      expect(row.routeAge).toBe(0);
      if (row.evalAccuracy !== undefined) expect(row.evalAccuracy).toBe(result.initialEvalAccuracy);
    }
  });

  it('trains on multi-turn conversations of a task with an environment, with R3 over the whole conversation', async () => {
    const reverse = createReverseTask();
    // Two model turns: after the first the environment answers "h" (as a tool would); the second is scored.
    registerTask(
      'test-two-turn-reverse',
      () =>
        defineTask({
          name: 'test-two-turn-reverse',
          description: 'reverse, answered on the second turn',
          alphabet: reverse.tokenizer.alphabet,
          maxPromptLength: 6,
          maxAnswerLength: 5,
          generate: reverse.generate,
          environment: {
            name: 'one-hint',
            maxTurns: 2,
            maxObservationTokens: 2,
            reset: () => undefined,
            step: (_state, turn, { turn: index }) =>
              index === 1
                ? { observation: 'h', done: false }
                : { done: true, reward: turn.length > 0 ? 1 : 0 },
          },
        }),
      { replace: true },
    );
    const config = await resolveRunConfig({
      // The onnx engine, for its prefix cache.
      config: {
        ...tiny,
        replay: 'R3',
        task: { name: 'test-two-turn-reverse' },
        backends: { trainer: 'reference', engine: 'onnx' },
      },
    });
    const result = await trainRun({ config, directory: join(root, 'two-turn') });
    expect(result.metrics).toHaveLength(4);
    for (const row of result.metrics) {
      expect(row.environmentErrors).toBe(0);
      expect(row.turnsPerEpisode).toBe(2);
      // Each conversation's second turn finds its first in the cache, routing rows included.
      expect(row.routingRowsReused).toBeGreaterThan(0);
      expect(row.observationTokenShare).toBeGreaterThan(0);
      // Each response holds two model turns and the one-token observation between them.
      expect(row.responseLength).toBeGreaterThanOrEqual(3);
      for (const value of [row.loss, row.klFree, row.klReplay, row.gradNorm])
        expect(Number.isFinite(value)).toBe(true);
    }
  });

  it('starts from a Hugging Face model directory (sharded): the same run as from those weights in memory', async () => {
    const base = {
      ...tiny,
      replay: 'R3' as const,
      warmStart: { steps: 0 },
      train: { ...tiny.train, steps: 2 },
    };
    const fromSeed = await resolveRunConfig({ config: base });
    // The directory holds exactly the weights the seeded run starts from, split over two shards.
    const modelConfig = modelConfigFor(fromSeed, createTask(fromSeed.task.name));
    const weights = createRandomWeights(modelConfig, fromSeed.seed);
    const model = join(root, 'hf-model');
    await mkdir(model);
    await writeHfConfigFile(join(model, 'config.json'), modelConfig);
    const names = [...weights.keys()];
    const half = Math.ceil(names.length / 2);
    const shard = (index: number) => `model-0000${index + 1}-of-00002.safetensors`;
    const weightMap: Record<string, string> = {};
    for (const [index, part] of [names.slice(0, half), names.slice(half)].entries()) {
      await writeSafetensorsFile(
        join(model, shard(index)),
        new Map(part.map((name) => [name, weights.get(name)!])),
      );
      for (const name of part) weightMap[name] = shard(index);
    }
    await writeFile(join(model, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    const fromDirectory = await resolveRunConfig({
      config: { ...base, model: { ...base.model, path: model } },
    });
    const a = await trainRun({ config: fromSeed, directory: join(root, 'from-seed') });
    const b = await trainRun({ config: fromDirectory, directory: join(root, 'from-directory') });
    expect(b.initialEvalAccuracy).toBe(a.initialEvalAccuracy);
    expect(b.metrics.map(deterministic)).toEqual(a.metrics.map(deterministic));
    // A directory whose vocabulary cannot hold the task's tokenizer is refused before anything runs.
    const small = join(root, 'hf-small');
    await mkdir(small);
    await writeHfConfigFile(join(small, 'config.json'), { ...modelConfig, vocabSize: 4 });
    await expect(
      trainRun({
        config: await resolveRunConfig({ config: { ...base, model: { ...base.model, path: small } } }),
        directory: join(root, 'from-small'),
      }),
    ).rejects.toThrow(/vocabulary has 4 tokens/);
  });

  it('trains on a JSONL dataset with a numeric reward, evaluating on its held-out file', async () => {
    const data = (name: string) => new URL(`../../data/${name}`, import.meta.url).pathname;
    const config = await resolveRunConfig({
      config: {
        ...tiny,
        task: {
          dataset: {
            path: data('word-problems.jsonl'),
            evalPath: data('word-problems-eval.jsonl'),
            reward: 'numeric',
          },
        },
        train: { ...tiny.train, steps: 2 },
      },
    });
    const result = await trainRun({ config, directory: join(root, 'jsonl') });
    expect(result.metrics).toHaveLength(2);
    expect(result.initialEvalAccuracy).toBeGreaterThanOrEqual(0);
    for (const row of result.metrics) expect(Number.isFinite(row.klFree)).toBe(true);
    const saved = JSON.parse(await readFile(join(root, 'jsonl', 'config.json'), 'utf8')) as {
      task: { dataset: { reward: string } };
    };
    expect(saved.task.dataset.reward).toBe('numeric');
  });

  it('rollout.async 1: each next batch is sampled before the update, with the weights of the step before, and the lag is reported', async () => {
    const base = { ...tiny, replay: 'R3' as const };
    const asyncConfig = await resolveRunConfig({
      config: { ...base, rollout: { ...tiny.rollout, async: 1 } },
    });
    const logged: string[] = [];
    const pipelined = await trainRun({
      config: asyncConfig,
      directory: join(root, 'async'),
      events: { log: (line) => logged.push(line) },
    });
    // In process, without a worker, the run says the overlap needs one.
    expect(logged.some((line) => line.includes('set rollout.worker: true'))).toBe(true);
    const syncLogged: string[] = [];
    const sync = await trainRun({
      config: await resolveRunConfig({ config: base }),
      directory: join(root, 'async-sync'),
      events: { log: (line) => syncLogged.push(line) },
    });
    expect(syncLogged.some((line) => line.includes('rollout.worker'))).toBe(false);
    // A frozen run samples every step with the warm-started weights (version 0).
    const frozen = await trainRun({
      config: await resolveRunConfig({ config: { ...base, train: { ...tiny.train, frozen: true } } }),
      directory: join(root, 'async-frozen'),
    });
    const rows = pipelined.metrics;
    expect(rows.map((row) => row.rolloutStaleness)).toEqual([0, 1, 1, 1]);
    expect(sync.metrics.map((row) => row.rolloutStaleness)).toEqual([0, 0, 0, 0]);
    // The routing R3 replays is the one recorded with those rollouts, and says how old it is.
    expect(rows.map((row) => row.routeAge)).toEqual([0, 1, 1, 1]);
    // Step 1 is on-policy in both runs: the same batch, the same update.
    expect(deterministic(rows[0]!)).toEqual(deterministic(sync.metrics[0]!));
    // Step 2's batch came from version 0 (the weights before step 1's update), as the frozen run's did.
    const sampled = (row: StepMetrics) => [row.rewardMean, row.accuracy, row.responseLength];
    expect(sampled(rows[1]!)).toEqual(sampled(frozen.metrics[1]!));
    for (const row of rows) expect(Number.isFinite(row.klReplay) && Number.isFinite(row.loss)).toBe(true);

    // Stopped after step 1 and resumed: the same run, step for step (the checkpoint keeps the policy the
    // engine sampled step 2 with).
    const interrupted = join(root, 'async-interrupted');
    await trainRun({ config: asyncConfig, directory: interrupted, stopAfterStep: 1 });
    const resumed = await trainRun({ config: asyncConfig, directory: interrupted, resume: true });
    expect(resumed.metrics.map(deterministic)).toEqual(rows.map(deterministic));
    // A checkpoint without that policy is refused by name.
    const damaged = join(root, 'async-damaged');
    await trainRun({ config: asyncConfig, directory: damaged, stopAfterStep: 2 });
    const checkpoint = (await readdir(join(damaged, 'checkpoints'))).find((entry) =>
      entry.startsWith('step-'),
    );
    await rm(join(damaged, 'checkpoints', checkpoint!, 'rollout-policy.safetensors'));
    await expect(trainRun({ config: asyncConfig, directory: damaged, resume: true })).rejects.toMatchObject({
      code: 'CHECKPOINT_INVALID',
      message: expect.stringContaining('rollout-policy.safetensors'),
    });
  });
});
