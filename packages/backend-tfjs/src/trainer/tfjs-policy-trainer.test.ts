import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  float32Tensor,
  fromFloat32,
  type MoerlError,
  type NamedTensors,
  type Objective,
  prepareTrainingBatch,
  readHfConfigFile,
  readSafetensorsFile,
  roundToBfloat16,
  type TrainingBatch,
  writeSafetensorsFile,
} from '@moerl/core';
import {
  conformanceFixture,
  createReferenceModel,
  createReferencePolicyTrainer,
  negativeMeanLogprobObjective,
  referenceBatchLogprobs,
} from '@moerl/testkit';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createParameters, disposeParameters } from '../model/parameters.js';
import { DEFAULT_POSITION_CACHE_ENTRIES } from '../model/position-tables.js';
import { activateTfjsBackend } from '../runtime/tfjs-runtime.js';
import { attachRouting } from './attach-routing.js';
import { padSequences } from './prepare-batch.js';
import { surrogateGradients } from './surrogate-gradients.js';
import { createTfjsPolicyTrainer, type TfjsPolicyTrainer } from './tfjs-policy-trainer.js';
import type { TfjsTrainerOptions } from './trainer-options.js';

const directories: string[] = [];
async function temporaryDirectory(): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'moerl-tfjs-'));
  directories.push(directory);
  return directory;
}

beforeAll(async () => {
  await activateTfjsBackend('tfjs-wasm');
});
afterAll(async () => {
  for (const directory of directories) await rm(directory, { recursive: true, force: true });
});

const quiet: TfjsTrainerOptions = { backends: ['tfjs-wasm'], onWarning: () => {} };

function trainer(
  extra: { learningRate?: number; maxGradNorm?: number; weights?: NamedTensors; seed?: number } = {},
  backendOptions: TfjsTrainerOptions = {},
): Promise<TfjsPolicyTrainer> {
  const { config, weights } = conformanceFixture();
  return createTfjsPolicyTrainer({
    config,
    weights: extra.weights ?? weights,
    learningRate: extra.learningRate ?? 1e-2,
    ...(extra.maxGradNorm === undefined ? {} : { maxGradNorm: extra.maxGradNorm }),
    seed: extra.seed ?? 1,
    backendOptions: { ...quiet, ...backendOptions },
  });
}

/** A bigger ragged batch than the fixture's: four sequences, one of them without a response. */
const batch: TrainingBatch = {
  sequences: [
    { promptIds: Int32Array.of(1, 7, 3), responseIds: Int32Array.of(19, 30, 2, 2) },
    { promptIds: Int32Array.of(11, 25, 0, 31, 8), responseIds: Int32Array.of(14, 5) },
    { promptIds: Int32Array.of(4), responseIds: Int32Array.of(9, 9, 12) },
    { promptIds: Int32Array.of(6, 2), responseIds: new Int32Array(0) },
  ],
};

function maxDifference(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let index = 0; index < a.length; index++) worst = Math.max(worst, Math.abs(a[index]! - b[index]!));
  return worst;
}

describe('TfjsPolicyTrainer: options', () => {
  it('rejects bad options with INVALID_ARGUMENT naming the field', async () => {
    const { config, weights } = conformanceFixture();
    const bad: Array<[Record<string, unknown>, Record<string, unknown>, string]> = [
      [{ learningRate: -1 }, {}, 'learningRate'],
      [{ maxGradNorm: Number.NaN }, {}, 'maxGradNorm'],
      [{}, { microBatchSize: 0 }, 'microBatchSize'],
      [{}, { experts: 'sparse' }, 'experts'],
      [{}, { schedule: { kind: 'warmup-cosine', warmupSteps: 3, totalSteps: 1 } }, 'totalSteps'],
      [{}, { beta2: 1 }, 'beta2'],
    ];
    for (const [options, backendOptions, field] of bad) {
      await expect(
        createTfjsPolicyTrainer({
          config,
          weights,
          ...options,
          backendOptions: { ...quiet, ...backendOptions },
        }),
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(field) });
    }
  });

  it('rejects weights that do not fit the config with CHECKPOINT_INVALID', async () => {
    const { config, weights } = conformanceFixture();
    const missing = new Map(weights);
    missing.delete('model.layers.1.mlp.experts.3.up_proj.weight');
    await expect(
      createTfjsPolicyTrainer({ config, weights: missing, backendOptions: quiet }),
    ).rejects.toMatchObject({
      code: 'CHECKPOINT_INVALID',
      message: expect.stringContaining('experts.3.up_proj'),
    });
  });
});

describe('TfjsPolicyTrainer: logprobs and routing', () => {
  it('reports the backend it runs on', async () => {
    const subject = await trainer();
    expect(subject.backend.name).toBe('tfjs-wasm');
    expect(subject.backendName).toBe('tfjs:tfjs-wasm');
    await subject.dispose();
  });

  it('matches the reference on a ragged batch with an empty response, with entropy', async () => {
    const subject = await trainer({}, { microBatchSize: 3 });
    const { reference } = conformanceFixture();
    const result = await subject.logprobs(batch, { routing: 'free', temperature: 1.3, returnEntropy: true });
    const expected = referenceBatchLogprobs(reference, batch, { temperature: 1.3, entropy: true });
    expect([...result.sequenceOffsets]).toEqual([0, 4, 6, 9, 9]);
    expect(maxDifference(result.logprobs, expected.logprobs)).toBeLessThanOrEqual(1e-4);
    expect(maxDifference(result.entropy!, expected.entropy)).toBeLessThanOrEqual(1e-4);
    await subject.dispose();
  });

  it('replaying the routing recorded in free mode reproduces free-mode logprobs exactly; another routing changes them', async () => {
    const subject = await trainer();
    const free = await subject.logprobs(batch, { routing: 'free' });
    const replayed = await subject.logprobs(attachRouting(batch, free.routing!), { routing: 'replay' });
    expect([...replayed.logprobs]).toEqual([...free.logprobs]);
    // Every position of each record rotated by one expert: still valid, certainly different.
    const { config } = conformanceFixture();
    const shifted = free.routing!.map((record) => ({
      ...record,
      experts: record.experts.map((id) => (id + 1) % config.numExperts),
    }));
    const changed = await subject.logprobs(attachRouting(batch, shifted), { routing: 'replay' });
    expect(maxDifference(changed.logprobs, free.logprobs)).toBeGreaterThan(1e-3);
    await subject.dispose();
  });

  it('loads BF16 weights (as Hugging Face ships them) by widening them to float32', async () => {
    const { config, weights } = conformanceFixture();
    const bf16: NamedTensors = new Map();
    const rounded: NamedTensors = new Map();
    for (const [name, tensor] of weights) {
      const values = tensor.data as Float32Array;
      bf16.set(name, fromFloat32(values, 'BF16', tensor.shape));
      rounded.set(name, float32Tensor(tensor.shape, roundToBfloat16(values)));
    }
    const subject = await createTfjsPolicyTrainer({ config, weights: bf16, backendOptions: quiet });
    const result = await subject.logprobs(batch, { routing: 'free' });
    const expected = referenceBatchLogprobs(createReferenceModel(config, rounded), batch, { temperature: 1 });
    expect(maxDifference(result.logprobs, expected.logprobs)).toBeLessThanOrEqual(1e-4);
    await subject.dispose();
  });

  it('accepts a record that also covers the final token (prompt + response positions)', async () => {
    const subject = await trainer();
    const { reference } = conformanceFixture();
    const full = batch.sequences.map(
      (sequence) => reference.forward([...sequence.promptIds, ...sequence.responseIds]).routing,
    );
    const result = await subject.logprobs(attachRouting(batch, full), { routing: 'replay' });
    const expected = referenceBatchLogprobs(reference, batch, { temperature: 1 });
    expect(maxDifference(result.logprobs, expected.logprobs)).toBeLessThanOrEqual(1e-4);
    await subject.dispose();
  });
});

describe('TfjsPolicyTrainer: partial replay', () => {
  it('ratio 0 is full replay, a huge ratio is free routing, and both report the replace rate', async () => {
    const subject = await trainer({}, { microBatchSize: 2 });
    expect(subject.capabilities.partialReplay).toBe(true);
    const { config } = conformanceFixture();
    const free = await subject.logprobs(batch, { routing: 'free' });
    // Every replayed expert rotated by one: valid routing the trainer would not choose.
    const shifted = attachRouting(
      batch,
      free.routing!.map((record) => ({
        ...record,
        experts: record.experts.map((id) => (id + 1) % config.numExperts),
      })),
    );
    const replayed = await subject.logprobs(shifted, { routing: 'replay' });
    const full = await subject.logprobs(shifted, { routing: 'replay', partialReplay: { minScoreRatio: 0 } });
    expect([...full.logprobs]).toEqual([...replayed.logprobs]);
    expect(full.replaceRate).toBe(0);
    expect(replayed.replaceRate).toBeUndefined();
    const own = await subject.logprobs(shifted, { routing: 'replay', partialReplay: { minScoreRatio: 1e9 } });
    expect([...own.logprobs]).toEqual([...free.logprobs]);
    expect(own.replaceRate).toBe(1);
    const half = await subject.logprobs(shifted, {
      routing: 'replay',
      partialReplay: { minScoreRatio: 0.5 },
    });
    expect(half.replaceRate).toBeGreaterThanOrEqual(0);
    expect(half.replaceRate).toBeLessThanOrEqual(1);

    const step = await subject.trainStep(shifted, negativeMeanLogprobObjective(), {
      routing: 'replay',
      partialReplay: { minScoreRatio: 1e9 },
    });
    expect(step.metrics.replaceRate).toBe(1);
    await expect(
      subject.logprobs(batch, { routing: 'free', partialReplay: { minScoreRatio: 0.5 } }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await subject.dispose();
  });
});

describe('TfjsPolicyTrainer: trainStep', () => {
  it('rejects missing routing before computing anything and leaves the weights alone', async () => {
    const subject = await trainer();
    const before = await subject.exportWeights();
    await expect(
      subject.trainStep(batch, negativeMeanLogprobObjective(), { routing: 'replay' }),
    ).rejects.toMatchObject({ code: 'ROUTING_MISSING' });
    const after = await subject.exportWeights();
    for (const [name, tensor] of before) expect(after.get(name)!.data).toEqual(tensor.data);
    await subject.dispose();
  });

  it('micro-batching accumulates the same update as one batch (free and replay)', async () => {
    for (const routing of ['free', 'replay'] as const) {
      const whole = await trainer();
      const micro = await trainer({}, { microBatchSize: 1 });
      const free = await whole.logprobs(batch, { routing: 'free' });
      const input = routing === 'free' ? batch : attachRouting(batch, free.routing!);
      const a = await whole.trainStep(input, negativeMeanLogprobObjective(), { routing, temperature: 0.9 });
      const b = await micro.trainStep(input, negativeMeanLogprobObjective(), { routing, temperature: 0.9 });
      expect(b.loss).toBeCloseTo(a.loss, 6);
      expect(b.gradNorm).toBeCloseTo(a.gradNorm, 4);
      const wa = await whole.exportWeights();
      const wb = await micro.exportWeights();
      for (const [name, tensor] of wa) {
        expect(
          maxDifference(wb.get(name)!.data as Float32Array, tensor.data as Float32Array),
          name,
        ).toBeLessThan(1e-5);
      }
      await whole.dispose();
      await micro.dispose();
    }
  });

  it('reports the pre-clip gradient norm and scales the first AdamW update by the clip factor', async () => {
    const { config, weights } = conformanceFixture();
    // An independent gradient of −mean logprob, straight from the surrogate.
    const parameters = createParameters(config, weights);
    const padded = padSequences(prepareTrainingBatch(config, batch, 'free'));
    const count = padded.rows.length;
    const gradients = surrogateGradients(
      parameters,
      padded,
      { replay: padded.replay, temperature: 1, withEntropy: false, experts: 'gathered' },
      () => ({ gradient: new Float32Array(count).fill(-1 / count), entropyGradient: undefined }),
    );
    let squares = 0;
    const host = new Map<string, Float32Array>();
    for (const [name, gradient] of gradients) {
      const values = Float32Array.from(gradient.dataSync());
      host.set(name, values);
      for (const value of values) squares += value * value;
      gradient.dispose();
    }
    disposeParameters(parameters);
    const norm = Math.sqrt(squares);

    const epsilon = 1e-3;
    const learningRate = 1e-2;
    const maxGradNorm = norm / 4;
    const subject = await trainer({ learningRate, maxGradNorm }, { epsilon });
    const result = await subject.trainStep(batch, negativeMeanLogprobObjective(), { routing: 'free' });
    expect(result.gradNorm).toBeCloseTo(norm, 4);
    const after = await subject.exportWeights();
    // First AdamW step with clip factor c: Δ = −lr · c·g / (c·|g| + ε).
    const clip = maxGradNorm / norm;
    for (const name of ['model.layers.0.mlp.gate.weight', 'lm_head.weight']) {
      const g = host.get(name)!;
      const w0 = weights.get(name)!.data as Float32Array;
      const w1 = after.get(name)!.data as Float32Array;
      for (let index = 0; index < g.length; index += 7) {
        const step = (-learningRate * clip * g[index]!) / (clip * Math.abs(g[index]!) + epsilon);
        expect(w1[index]! - w0[index]!).toBeCloseTo(step, 6);
      }
    }
    await subject.dispose();
  });

  it('a non-finite gradient skips the step, counts it and warns with NON_FINITE; training continues', async () => {
    const warnings: MoerlError[] = [];
    const subject = await trainer({}, { onWarning: (warning) => warnings.push(warning) });
    const before = await subject.exportWeights();
    const infinite: Objective = {
      name: 'infinite',
      evaluate: ({ logprobs }) => ({
        loss: 1,
        gradient: new Float32Array(logprobs.length).fill(Number.POSITIVE_INFINITY),
        metrics: { seen: logprobs.length },
      }),
    };
    const skipped = await subject.trainStep(batch, infinite, { routing: 'free' });
    expect(skipped).toMatchObject({ skipped: true, loss: 1, metrics: { seen: 9 } });
    expect(subject.stats()).toEqual({ steps: 0, skippedSteps: 1 });
    expect(warnings.map((warning) => warning.code)).toEqual(['NON_FINITE']);
    const after = await subject.exportWeights();
    for (const [name, tensor] of before) expect(after.get(name)!.data).toEqual(tensor.data);
    const next = await subject.trainStep(batch, negativeMeanLogprobObjective(), { routing: 'free' });
    expect(next.skipped).toBe(false);
    expect(subject.stats()).toEqual({ steps: 1, skippedSteps: 1 });
    await subject.dispose();
  });

  it('R2: routing recorded with the old logprobs is replayed in every update step of the batch', async () => {
    const subject = await trainer({ learningRate: 3e-2 });
    const objective = negativeMeanLogprobObjective();
    const old = await subject.logprobs(batch, { routing: 'free' });
    const r2Batch = attachRouting(batch, old.routing!);
    for (let step = 0; step < 3; step++) {
      // The loss a replay step reports is the objective at the logprobs under the recorded routing.
      const expected = objective.evaluate(await subject.logprobs(r2Batch, { routing: 'replay' })).loss;
      const result = await subject.trainStep(r2Batch, objective, { routing: 'replay' });
      expect(result.loss).toBeCloseTo(expected, 6);
    }
    await subject.dispose();
  });

  it('leaks no tensors across logprobs and train steps (one and several micro-batches)', async () => {
    for (const microBatchSize of [undefined, 2]) {
      const subject = await trainer({}, microBatchSize === undefined ? {} : { microBatchSize });
      const objective = negativeMeanLogprobObjective();
      await subject.trainStep(batch, objective, { routing: 'free' });
      const old = await subject.logprobs(batch, { routing: 'free', returnEntropy: true });
      const before = tf.memory().numTensors;
      for (let step = 0; step < 3; step++) {
        await subject.trainStep(batch, objective, { routing: 'free' });
        await subject.trainStep(attachRouting(batch, old.routing!), objective, { routing: 'replay' });
        await subject.logprobs(batch, { routing: 'free', returnEntropy: true });
      }
      expect(tf.memory().numTensors).toBe(before);
      await subject.dispose();
    }
  });

  it('keeps tensors within the position cache bound over many lengths, and dispose frees them all', async () => {
    const before = tf.memory().numTensors;
    const subject = await trainer();
    const objective = negativeMeanLogprobObjective();
    // One sequence per batch, so the padded length is 3 + response length: a new length every step.
    const ofLength = (response: number): TrainingBatch => ({
      sequences: [
        {
          promptIds: Int32Array.of(1, 7, 3),
          responseIds: Int32Array.from({ length: response }, (_, i) => i),
        },
      ],
    });
    await subject.trainStep(ofLength(1), objective, { routing: 'free' });
    const afterFirst = tf.memory().numTensors; // weights, optimizer state and one cached length
    for (let response = 2; response <= DEFAULT_POSITION_CACHE_ENTRIES + 4; response++) {
      await subject.trainStep(ofLength(response), objective, { routing: 'free' });
      await subject.logprobs(ofLength(response), { routing: 'free' });
      const cachedLengths = Math.min(response, DEFAULT_POSITION_CACHE_ENTRIES);
      expect(tf.memory().numTensors).toBe(afterFirst + 4 * (cachedLengths - 1));
    }
    await subject.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('supervisedStep lowers the cross-entropy of the targets', async () => {
    const subject = await trainer({ learningRate: 5e-3 });
    const first = await subject.supervisedStep(batch);
    for (let step = 0; step < 4; step++) await subject.supervisedStep(batch);
    const last = await subject.supervisedStep(batch);
    expect(last.loss).toBeLessThan(first.loss - 0.05);
    await subject.dispose();
  });
});

describe('TfjsPolicyTrainer: learning rate', () => {
  it('reports the scheduled rate each update applied in metrics.learningRate', async () => {
    const schedule = { kind: 'warmup-cosine', warmupSteps: 2, totalSteps: 6 } as const;
    const run = await trainer({ learningRate: 1e-2 }, { schedule });
    const rates: number[] = [];
    for (let step = 0; step < 4; step++)
      rates.push(
        (await run.trainStep(batch, negativeMeanLogprobObjective(), { routing: 'free' })).metrics
          .learningRate!,
      );
    // Warmup 1e-2 · (k+1)/2, then cosine over 4 updates: progress 0, then 1/4.
    const expected = [5e-3, 1e-2, 1e-2, 1e-2 * 0.5 * (1 + Math.cos(Math.PI / 4))];
    for (const [index, rate] of rates.entries()) expect(rate).toBeCloseTo(expected[index]!, 12);
    await run.dispose();
  });
});

describe('TfjsPolicyTrainer: checkpoints', () => {
  it('resuming after a simulated crash gives the same next step as an uninterrupted run', async () => {
    const directory = await temporaryDirectory();
    const schedule = { kind: 'warmup-cosine', warmupSteps: 2, totalSteps: 6 } as const;
    const objective = negativeMeanLogprobObjective();
    const run = await trainer({ maxGradNorm: 1 }, { schedule });
    for (let step = 0; step < 2; step++) await run.trainStep(batch, objective, { routing: 'free' });
    await run.saveCheckpoint(directory);
    const uninterrupted = await run.trainStep(batch, objective, { routing: 'free' });
    const expectedWeights = await run.exportWeights();
    await run.dispose(); // the "crash"

    const resumed = await trainer(
      { maxGradNorm: 1, weights: conformanceFixture().otherWeights },
      { schedule },
    );
    await resumed.loadCheckpoint(directory);
    expect(resumed.stats().steps).toBe(2);
    const next = await resumed.trainStep(batch, objective, { routing: 'free' });
    expect(next.loss).toBe(uninterrupted.loss);
    expect(next.gradNorm).toBe(uninterrupted.gradNorm);
    const weights = await resumed.exportWeights();
    for (const [name, tensor] of expectedWeights) expect(weights.get(name)!.data, name).toEqual(tensor.data);
    await resumed.dispose();
  });

  it('writes a checkpoint the reference model loads unchanged, and loads the reference trainer’s', async () => {
    const directory = await temporaryDirectory();
    const subject = await trainer();
    await subject.trainStep(batch, negativeMeanLogprobObjective(), { routing: 'free' });
    await subject.saveCheckpoint(directory);
    const ours = await subject.logprobs(batch, { routing: 'free' });
    const config = await readHfConfigFile(join(directory, 'config.json'));
    const { tensors } = await readSafetensorsFile(join(directory, 'model.safetensors'));
    const expected = referenceBatchLogprobs(createReferenceModel(config, tensors), batch, { temperature: 1 });
    expect(maxDifference(ours.logprobs, expected.logprobs)).toBeLessThanOrEqual(1e-4);

    const referenceDirectory = await temporaryDirectory();
    const { config: fixtureConfig, otherWeights, otherReference } = conformanceFixture();
    const reference = createReferencePolicyTrainer({ config: fixtureConfig, weights: otherWeights });
    await reference.saveCheckpoint(referenceDirectory);
    await subject.loadCheckpoint(referenceDirectory);
    expect(subject.stats().steps).toBe(0);
    const loaded = await subject.logprobs(batch, { routing: 'free' });
    const want = referenceBatchLogprobs(otherReference, batch, { temperature: 1 });
    expect(maxDifference(loaded.logprobs, want.logprobs)).toBeLessThanOrEqual(1e-4);
    await subject.dispose();
  });

  it('rejects a bad optimizer file before touching the weights', async () => {
    const good = await temporaryDirectory();
    const bad = await temporaryDirectory();
    const subject = await trainer();
    await subject.trainStep(batch, negativeMeanLogprobObjective(), { routing: 'free' });
    await subject.saveCheckpoint(bad);
    await subject.trainStep(batch, negativeMeanLogprobObjective(), { routing: 'free' });
    await subject.saveCheckpoint(good);
    // Same save, one moment missing: the weights file is fine, the optimizer file is not.
    const optimizer = await readSafetensorsFile(join(bad, 'optimizer', 'optimizer.safetensors'));
    const firstMoment = [...optimizer.tensors.keys()][0]!;
    optimizer.tensors.delete(firstMoment);
    await writeSafetensorsFile(
      join(bad, 'optimizer', 'optimizer.safetensors'),
      optimizer.tensors,
      optimizer.metadata,
    );
    const before = await subject.exportWeights();
    await expect(subject.loadCheckpoint(bad)).rejects.toMatchObject({ code: 'CHECKPOINT_INVALID' });
    const after = await subject.exportWeights();
    for (const [name, tensor] of before) expect(after.get(name)!.data, name).toEqual(tensor.data);
    expect(subject.stats().steps).toBe(2);
    await subject.dispose();
  });

  it('detects a save torn between files and a config for another model', async () => {
    const first = await temporaryDirectory();
    const second = await temporaryDirectory();
    const subject = await trainer();
    await subject.saveCheckpoint(first);
    await subject.trainStep(batch, negativeMeanLogprobObjective(), { routing: 'free' });
    await subject.saveCheckpoint(second);
    // A crash after the new weights landed but before the new state file: weights of one save, state of another.
    await writeFile(join(first, 'model.safetensors'), await readFile(join(second, 'model.safetensors')));
    await expect(subject.loadCheckpoint(first)).rejects.toMatchObject({ code: 'CHECKPOINT_INVALID' });

    const config = JSON.parse(await readFile(join(second, 'config.json'), 'utf8'));
    await writeFile(join(second, 'config.json'), JSON.stringify({ ...config, rope_theta: 1234 }));
    await expect(subject.loadCheckpoint(second)).rejects.toMatchObject({ code: 'CHECKPOINT_INVALID' });
    await subject.dispose();
  });

  it('refuses NaN weights or moments with NON_FINITE naming the file and the tensor, before touching anything', async () => {
    const directory = await temporaryDirectory();
    const subject = await trainer();
    await subject.saveCheckpoint(directory);
    for (const file of ['model.safetensors', join('optimizer', 'optimizer.safetensors')]) {
      const path = join(directory, file);
      const original = await readSafetensorsFile(path);
      const [name, tensor] = [...original.tensors].find(([, value]) => value.dtype === 'F32')!;
      const data = Float32Array.from(tensor.data as Float32Array);
      data[1] = Number.NaN;
      const poisoned = new Map(original.tensors).set(name, { ...tensor, dtype: 'F32', data });
      await writeSafetensorsFile(path, poisoned, original.metadata);
      await expect(subject.loadCheckpoint(directory)).rejects.toMatchObject({
        code: 'NON_FINITE',
        message: expect.stringContaining(`${path}: ${name} must be finite, found NaN at index 1`),
      });
      await writeSafetensorsFile(path, original.tensors, original.metadata);
    }
    await subject.loadCheckpoint(directory);
    await subject.dispose();
  });

  it('says what it found when the save id is missing, damaged or from another save', async () => {
    const directory = await temporaryDirectory();
    const subject = await trainer();
    await subject.saveCheckpoint(directory);
    const path = join(directory, 'model.safetensors');
    const original = await readSafetensorsFile(path);
    const state = JSON.parse(await readFile(join(directory, 'trainer-state.json'), 'utf8')) as {
      saveId: string;
    };
    const messageFor = async (metadata: Record<string, string>) => {
      await writeSafetensorsFile(path, original.tensors, metadata);
      const error = (await subject
        .loadCheckpoint(directory)
        .catch((caught: unknown) => caught)) as MoerlError;
      expect(error.code).toBe('CHECKPOINT_INVALID');
      return error.message;
    };
    expect(await messageFor({ format: 'pt', moerl_save_ix: state.saveId })).toContain(
      `model.safetensors: expected the metadata key moerl_save_id (= "${state.saveId}", named by trainer-state.json), found only "format", "moerl_save_ix"`,
    );
    expect(await messageFor({})).toContain('found no metadata keys');
    expect(await messageFor({ format: 'pt', moerl_save_id: 'beef' })).toContain(
      `model.safetensors: moerl_save_id is "beef" but trainer-state.json names "${state.saveId}"`,
    );
    await subject.dispose();
  });

  it('keeps the moments out of the model directory (its only *.safetensors is the weights), and still reads the old layout', async () => {
    const whole = await temporaryDirectory();
    const legacy = await temporaryDirectory();
    const subject = await trainer();
    await subject.trainStep(batch, negativeMeanLogprobObjective(), { routing: 'free' });
    await subject.saveCheckpoint(whole);
    const entries = await readdir(whole);
    expect(entries.filter((entry) => entry.endsWith('.safetensors'))).toEqual(['model.safetensors']);
    expect(await readdir(join(whole, 'optimizer'))).toEqual(['optimizer.safetensors']);

    // A checkpoint of the old layout: the moments beside the weights.
    await subject.saveCheckpoint(legacy);
    await rename(join(legacy, 'optimizer', 'optimizer.safetensors'), join(legacy, 'optimizer.safetensors'));
    await rm(join(legacy, 'optimizer'), { recursive: true });
    const fromNew = await trainer();
    const fromOld = await trainer();
    await fromNew.loadCheckpoint(whole);
    await fromOld.loadCheckpoint(legacy);
    const next = async (resumed: TfjsPolicyTrainer) => {
      await resumed.trainStep(batch, negativeMeanLogprobObjective(), { routing: 'free' });
      return (await resumed.exportWeights()).get('lm_head.weight')!.data;
    };
    // The moments came back from the old place: both take the same next step.
    expect(await next(fromOld)).toEqual(await next(fromNew));
    expect(fromOld.stats().steps).toBe(2);
    // Saving over the old layout leaves no moments beside the weights.
    await fromOld.saveCheckpoint(legacy);
    expect((await readdir(legacy)).filter((entry) => entry.endsWith('.safetensors'))).toEqual([
      'model.safetensors',
    ]);
    for (const each of [subject, fromNew, fromOld]) await each.dispose();
  });
});

describe('TfjsPolicyTrainer: load-balancing loss', () => {
  const zero: Objective = {
    name: 'zero',
    evaluate: ({ logprobs }) => ({ loss: 0, gradient: new Float32Array(logprobs.length), metrics: {} }),
  };

  it('reports it and, as the only training signal, balances the router over steps', async () => {
    const subject = await trainer({ learningRate: 3e-2 }, { routerAuxLossCoefficient: 1 });
    const losses: number[] = [];
    for (let step = 0; step < 6; step++) {
      const result = await subject.trainStep(batch, zero, { routing: 'free' });
      expect(result.skipped).toBe(false);
      losses.push(result.metrics.routerAuxLoss!);
      expect(result.metrics.expertLoadImbalance).toBeGreaterThanOrEqual(1);
    }
    await subject.dispose();
    const { config } = conformanceFixture();
    // Perfect balance gives topK; a random router sits above it, and the auxiliary gradient moves it down.
    expect(losses[0]).toBeGreaterThan(config.topK);
    expect(losses.at(-1)!).toBeLessThan(losses[0]!);
  });

  it('is absent with the default coefficient 0, and a negative one is refused', async () => {
    const subject = await trainer();
    const result = await subject.trainStep(batch, zero, { routing: 'free' });
    expect(result.metrics.routerAuxLoss).toBeUndefined();
    await subject.dispose();
    await expect(trainer({}, { routerAuxLossCoefficient: -1 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('routerAuxLossCoefficient'),
    });
  });
});
