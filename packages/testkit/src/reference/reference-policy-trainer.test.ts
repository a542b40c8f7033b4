import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createModelConfig,
  createRandom,
  type HostTensor,
  MoerlError,
  type NamedTensors,
  type Objective,
  type PolicyTrainer,
  type RoutingRecord,
  sequenceTokens,
  sliceRoutingRecord,
  type TrainingBatch,
  writeHfConfigFile,
} from '@moerl/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conformanceFixture } from '../conformance/conformance-fixture.js';
import { tinyBiasedTiedConfig } from '../fixtures/tiny-config.js';
import { createRandomWeights } from '../weights/random-weights.js';
import { referenceLogprobs } from './reference-logprobs.js';
import { createReferenceModel } from './reference-model.js';
import { createReferencePolicyTrainer } from './reference-policy-trainer.js';

// ---------------------------------------------------------------------------------------------------------
// Helpers

async function codeOf(action: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await action();
  } catch (error) {
    return MoerlError.isInstance(error) ? error.code : `not a MoerlError: ${String(error)}`;
  }
  return undefined;
}

async function errorOf(action: () => Promise<unknown>): Promise<MoerlError> {
  try {
    await action();
  } catch (error) {
    if (MoerlError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a MoerlError');
}

function data(weights: NamedTensors, name: string): Float32Array {
  const tensor = weights.get(name);
  if (tensor === undefined || tensor.dtype !== 'F32') throw new Error(`no F32 weight ${name}`);
  return tensor.data;
}

/** Bit patterns, so that equality means bit-for-bit. */
const bits = (values: Float32Array) => new Uint32Array(values.buffer, values.byteOffset, values.length);

/** An objective whose gradient (and entropy gradient) is fixed, whatever the logprobs. */
function fixedObjective(gradient: Float32Array, entropyGradient?: Float32Array): Objective {
  return {
    name: 'fixed',
    needsEntropy: entropyGradient !== undefined,
    evaluate: ({ logprobs }) => {
      let loss = 0;
      for (let index = 0; index < logprobs.length; index++) loss += gradient[index]! * logprobs[index]!;
      return {
        loss,
        gradient,
        ...(entropyGradient === undefined ? {} : { entropyGradient }),
        metrics: { tokens: logprobs.length },
      };
    },
  };
}

function randomVector(length: number, seed: number): Float32Array {
  const random = createRandom(seed);
  return Float32Array.from({ length }, () => 2 * random.nextFloat() - 1);
}

const { config, weights, batch } = conformanceFixture();
const vocab = config.vocabSize;
const hidden = config.hiddenSize;
const tokenCount = 6; // response tokens of the fixture batch

/**
 * The surrogate Σ_t g_t · logprob_t (+ Σ_t e_t · entropy_t) of `batch`, in float64 from the float32 logits
 * of a reference model built on `lmHead`, i.e. independently of the trainer's gradient code.
 */
function surrogate(
  lmHead: Float32Array,
  options: {
    temperature: number;
    gradient: Float32Array;
    entropyGradient?: Float32Array;
    routing?: readonly RoutingRecord[];
  },
): number {
  const perturbed = new Map(weights);
  perturbed.set('lm_head.weight', { dtype: 'F32', shape: [vocab, hidden], data: lmHead });
  const model = createReferenceModel(config, perturbed);
  let total = 0;
  let token = 0;
  batch.sequences.forEach((sequence, index) => {
    const tokens = sequenceTokens(sequence);
    const replay = options.routing?.[index];
    const { logits } = model.forward(tokens, replay === undefined ? {} : { routing: replay });
    for (let position = sequence.promptIds.length - 1; position < tokens.length - 1; position++, token++) {
      const scaled = Array.from(logits.subarray(position * vocab, (position + 1) * vocab)).map(
        (value) => value / options.temperature,
      );
      const max = Math.max(...scaled);
      const logSumExp = max + Math.log(scaled.reduce((sum, value) => sum + Math.exp(value - max), 0));
      total += options.gradient[token]! * (scaled[tokens[position + 1]!]! - logSumExp);
      if (options.entropyGradient !== undefined) {
        const entropy = scaled.reduce(
          (sum, value) => sum - Math.exp(value - logSumExp) * (value - logSumExp),
          0,
        );
        total += options.entropyGradient[token]! * entropy;
      }
    }
  });
  return total;
}

/** One SGD step with learning rate 1 and no clipping, so W_before − W_after is dL/dW (rounded to float32). */
async function headGradientOfOneStep(
  objective: Objective,
  options: { temperature: number; routing?: readonly RoutingRecord[] },
): Promise<{ gradient: Float64Array; gradNorm: number }> {
  const trainer = createReferencePolicyTrainer({ config, weights, learningRate: 1 });
  const stepBatch: TrainingBatch =
    options.routing === undefined
      ? batch
      : {
          sequences: batch.sequences.map((sequence, index) => ({
            ...sequence,
            routing: options.routing![index]!,
          })),
        };
  const result = await trainer.trainStep(stepBatch, objective, {
    routing: options.routing === undefined ? 'free' : 'replay',
    temperature: options.temperature,
  });
  expect(result.skipped).toBe(false);
  expect(result.metrics.learningRate).toBe(1); // the rate the update applied, reported for run logs
  const before = data(weights, 'lm_head.weight');
  const after = data(await trainer.exportWeights(), 'lm_head.weight');
  await trainer.dispose();
  return {
    gradient: Float64Array.from(before, (value, index) => value - after[index]!),
    gradNorm: result.gradNorm,
  };
}

/**
 * Compares dL/dW with central finite differences at the entries of largest gradient and a few seeded
 * others: relative 1e-2 (float32 logits limit the differences' precision), absolute 1e-4 near zero.
 */
function expectMatchesFiniteDifferences(
  gradient: Float64Array,
  loss: (lmHead: Float32Array) => number,
): void {
  const byMagnitude = [...gradient.keys()].sort((a, b) => Math.abs(gradient[b]!) - Math.abs(gradient[a]!));
  const random = createRandom(5);
  const entries = new Set([
    ...byMagnitude.slice(0, 4),
    ...Array.from({ length: 4 }, () => random.nextInt(gradient.length)),
  ]);
  const head = data(weights, 'lm_head.weight');
  const epsilon = 1e-3;
  for (const entry of entries) {
    const plus = head.slice();
    const minus = head.slice();
    plus[entry] = plus[entry]! + epsilon;
    minus[entry] = minus[entry]! - epsilon;
    // The float32 step actually taken, not the nominal 2ε.
    const finiteDifference = (loss(plus) - loss(minus)) / (plus[entry]! - minus[entry]!);
    const analytic = gradient[entry]!;
    expect(
      Math.abs(finiteDifference - analytic),
      `entry ${entry} (row ${Math.floor(entry / hidden)}): analytic ${analytic}, finite difference ${finiteDifference}`,
    ).toBeLessThanOrEqual(1e-2 * Math.abs(analytic) + 1e-4);
  }
  // The largest entries are the ones that matter; they must not be near zero (or the check proves little).
  expect(Math.abs(gradient[byMagnitude[0]!]!)).toBeGreaterThan(1e-2);
}

function foreignRouting(): RoutingRecord[] {
  const { otherReference } = conformanceFixture();
  return batch.sequences.map((sequence) => {
    const tokens = sequenceTokens(sequence);
    return sliceRoutingRecord(otherReference.forward(tokens).routing, 0, tokens.length - 1);
  });
}

// ---------------------------------------------------------------------------------------------------------

describe('createReferencePolicyTrainer: the LM head gradient', () => {
  const gradient = randomVector(tokenCount, 11);

  it('equals central finite differences of Σ g·logprob (temperature 1)', async () => {
    const step = await headGradientOfOneStep(fixedObjective(gradient), { temperature: 1 });
    expectMatchesFiniteDifferences(step.gradient, (head) => surrogate(head, { temperature: 1, gradient }));
  });

  it('equals central finite differences at temperature 0.7 with a replayed foreign routing', async () => {
    const routing = foreignRouting();
    const step = await headGradientOfOneStep(fixedObjective(gradient), { temperature: 0.7, routing });
    expectMatchesFiniteDifferences(step.gradient, (head) =>
      surrogate(head, { temperature: 0.7, gradient, routing }),
    );
  });

  it('includes Σ entropyGradient·entropy when the objective returns one', async () => {
    const entropyGradient = randomVector(tokenCount, 12);
    const step = await headGradientOfOneStep(fixedObjective(gradient, entropyGradient), { temperature: 0.9 });
    expectMatchesFiniteDifferences(step.gradient, (head) =>
      surrogate(head, { temperature: 0.9, gradient, entropyGradient }),
    );
  });

  it('reports the L2 norm of the unclipped gradient, and clips the step to maxGradNorm', async () => {
    const objective = fixedObjective(gradient);
    const free = await headGradientOfOneStep(objective, { temperature: 1 });
    const norm = Math.hypot(...free.gradient);
    expect(free.gradNorm).toBeCloseTo(norm, 5);

    const learningRate = 0.5;
    const maxGradNorm = free.gradNorm / 4;
    const trainer = createReferencePolicyTrainer({ config, weights, learningRate, maxGradNorm });
    const result = await trainer.trainStep(batch, objective, { routing: 'free' });
    expect(result.gradNorm).toBe(free.gradNorm);
    const after = data(await trainer.exportWeights(), 'lm_head.weight');
    const before = data(weights, 'lm_head.weight');
    const stepNorm = Math.hypot(...Array.from(before, (value, index) => value - after[index]!));
    expect(stepNorm / (learningRate * maxGradNorm)).toBeCloseTo(1, 4);
  });

  it('updates only lm_head.weight, with learning rate 1e-2 by default', async () => {
    const trainer = createReferencePolicyTrainer({ config, weights });
    const objective = fixedObjective(gradient);
    const result = await trainer.trainStep(batch, objective, { routing: 'free' });
    const exported = await trainer.exportWeights();
    for (const [name, tensor] of weights) {
      if (name === 'lm_head.weight') continue;
      expect(bits(data(exported, name)), name).toEqual(bits(tensor.data as Float32Array));
    }
    const unit = await headGradientOfOneStep(objective, { temperature: 1 });
    const before = data(weights, 'lm_head.weight');
    const after = data(exported, 'lm_head.weight');
    for (let index = 0; index < before.length; index += 37) {
      expect(before[index]! - after[index]!).toBeCloseTo(1e-2 * unit.gradient[index]!, 6);
    }
    expect(result).toMatchObject({ skipped: false, metrics: { tokens: tokenCount } });
  });
});

describe('createReferencePolicyTrainer: logprobs and routing', () => {
  let trainer: PolicyTrainer;
  beforeAll(() => {
    trainer = createReferencePolicyTrainer({ config, weights });
  });
  afterAll(() => trainer.dispose());

  it('matches referenceLogprobs bit-for-bit and records prompt + response − 1 positions', async () => {
    const result = await trainer.logprobs(batch, { routing: 'free', temperature: 0.8, returnEntropy: true });
    expect([...result.sequenceOffsets]).toEqual([0, 4, 6]);
    const model = createReferenceModel(config, weights);
    batch.sequences.forEach((sequence, index) => {
      const tokens = sequenceTokens(sequence);
      const expected = referenceLogprobs(model, tokens, { temperature: 0.8, entropy: true });
      const start = sequence.promptIds.length - 1;
      const [from, to] = [result.sequenceOffsets[index]!, result.sequenceOffsets[index + 1]!];
      expect(bits(result.logprobs.slice(from, to))).toEqual(bits(expected.logprobs.slice(start)));
      expect(bits(result.entropy!.slice(from, to))).toEqual(bits(expected.entropy!.slice(start)));
      expect(result.routing![index]).toEqual(sliceRoutingRecord(expected.routing, 0, tokens.length - 1));
    });
  });

  it('returns no entropy unless asked, and no routing in replay mode', async () => {
    const free = await trainer.logprobs(batch, { routing: 'free' });
    expect(free.entropy).toBeUndefined();
    const replayBatch = {
      sequences: batch.sequences.map((sequence, index) => ({ ...sequence, routing: free.routing![index]! })),
    };
    const replayed = await trainer.logprobs(replayBatch, { routing: 'replay' });
    expect(replayed.routing).toBeUndefined();
    expect(bits(replayed.logprobs)).toEqual(bits(free.logprobs));
  });

  it('accepts replayed routing that also covers the final token, and ignores that position', async () => {
    const routing = foreignRouting();
    const model = conformanceFixture().otherReference;
    const withFinal = batch.sequences.map((sequence) => model.forward(sequenceTokens(sequence)).routing);
    const short = await trainer.logprobs(
      { sequences: batch.sequences.map((sequence, index) => ({ ...sequence, routing: routing[index]! })) },
      { routing: 'replay' },
    );
    const long = await trainer.logprobs(
      { sequences: batch.sequences.map((sequence, index) => ({ ...sequence, routing: withFinal[index]! })) },
      { routing: 'replay' },
    );
    expect(bits(long.logprobs)).toEqual(bits(short.logprobs));
  });

  it('rejects missing routing for any sequence before checking shapes, and wrong position counts', async () => {
    const routing = foreignRouting();
    const [first, second] = batch.sequences as [TrainingBatch['sequences'][0], TrainingBatch['sequences'][0]];
    const broken = { ...routing[0]!, experts: routing[0]!.experts.map(() => 99) };
    const missingSecond = { sequences: [{ ...first, routing: broken }, second] };
    expect(await codeOf(() => trainer.logprobs(missingSecond, { routing: 'replay' }))).toBe(
      'ROUTING_MISSING',
    );

    const tooLong = batch.sequences.map(
      (sequence) => conformanceFixture().otherReference.forward([...sequenceTokens(sequence), 4]).routing,
    );
    const error = await errorOf(() =>
      trainer.logprobs(
        { sequences: batch.sequences.map((sequence, index) => ({ ...sequence, routing: tooLong[index]! })) },
        { routing: 'replay' },
      ),
    );
    expect(error.code).toBe('ROUTING_SHAPE');
    expect(error.details).toMatchObject({ sequence: 0, expected: [6, 7], found: 8 });
  });

  it('trainStep checks routing before it evaluates the objective', async () => {
    let evaluated = 0;
    const objective: Objective = {
      name: 'counting',
      evaluate: (input) => {
        evaluated++;
        return fixedObjective(new Float32Array(input.logprobs.length)).evaluate(input);
      },
    };
    expect(await codeOf(() => trainer.trainStep(batch, objective, { routing: 'replay' }))).toBe(
      'ROUTING_MISSING',
    );
    expect(evaluated).toBe(0);
  });

  it('handles an empty response and a one-token prompt; rejects an empty prompt', async () => {
    const result = await trainer.logprobs(
      {
        sequences: [
          { promptIds: Int32Array.of(4, 5, 6), responseIds: new Int32Array(0) },
          { promptIds: Int32Array.of(9), responseIds: new Int32Array(0) },
          { promptIds: Int32Array.of(9), responseIds: Int32Array.of(3) },
        ],
      },
      { routing: 'free' },
    );
    expect([...result.sequenceOffsets]).toEqual([0, 0, 0, 1]);
    expect(result.routing!.map((record) => record.positions)).toEqual([2, 0, 1]);
    expect(
      await codeOf(() =>
        trainer.logprobs(
          { sequences: [{ promptIds: new Int32Array(0), responseIds: Int32Array.of(1) }] },
          { routing: 'free' },
        ),
      ),
    ).toBe('INVALID_ARGUMENT');
  });

  it('rejects a bad temperature and a token outside the vocabulary with INVALID_ARGUMENT', async () => {
    expect(await codeOf(() => trainer.logprobs(batch, { routing: 'free', temperature: 0 }))).toBe(
      'INVALID_ARGUMENT',
    );
    const outside = { sequences: [{ promptIds: Int32Array.of(1), responseIds: Int32Array.of(vocab) }] };
    expect(await codeOf(() => trainer.logprobs(outside, { routing: 'free' }))).toBe('INVALID_ARGUMENT');
  });
});

describe('createReferencePolicyTrainer: steps that cannot be taken', () => {
  it('skips a step with a non-finite gradient entry: weights unchanged, gradNorm NaN, metrics kept', async () => {
    const trainer = createReferencePolicyTrainer({ config, weights });
    const gradient = randomVector(tokenCount, 3);
    gradient[2] = Number.POSITIVE_INFINITY;
    const result = await trainer.trainStep(batch, fixedObjective(gradient), { routing: 'free' });
    expect(result.skipped).toBe(true);
    expect(result.gradNorm).toBeNaN();
    expect(result.metrics).toEqual({ tokens: tokenCount });
    const exported = await trainer.exportWeights();
    expect(bits(data(exported, 'lm_head.weight'))).toEqual(bits(data(weights, 'lm_head.weight')));
  });

  it('skips an update that would overflow a weight to ±Infinity: weights unchanged', async () => {
    const trainer = createReferencePolicyTrainer({ config, weights, learningRate: 1e300 });
    const result = await trainer.trainStep(batch, fixedObjective(randomVector(tokenCount, 3)), {
      routing: 'free',
    });
    expect(result.skipped).toBe(true);
    const exported = await trainer.exportWeights();
    expect(bits(data(exported, 'lm_head.weight'))).toEqual(bits(data(weights, 'lm_head.weight')));
  });

  it('rejects an objective gradient of the wrong length with INVALID_ARGUMENT', async () => {
    const trainer = createReferencePolicyTrainer({ config, weights });
    const objective = fixedObjective(new Float32Array(tokenCount - 1));
    expect(await codeOf(() => trainer.trainStep(batch, objective, { routing: 'free' }))).toBe(
      'INVALID_ARGUMENT',
    );
  });

  it('computes logprobs for tied embeddings but refuses to train them (UNSUPPORTED)', async () => {
    const tiedWeights = createRandomWeights(tinyBiasedTiedConfig, 5);
    const trainer = createReferencePolicyTrainer({ config: tinyBiasedTiedConfig, weights: tiedWeights });
    const model = createReferenceModel(tinyBiasedTiedConfig, tiedWeights);
    const result = await trainer.logprobs(batch, { routing: 'free' });
    const tokens = sequenceTokens(batch.sequences[1]!);
    expect(bits(result.logprobs.slice(4))).toEqual(
      bits(referenceLogprobs(model, tokens, { temperature: 1 }).logprobs.slice(4)),
    );
    const objective = fixedObjective(new Float32Array(tokenCount));
    expect(await codeOf(() => trainer.trainStep(batch, objective, { routing: 'free' }))).toBe('UNSUPPORTED');
  });

  it('rejects a negative or non-finite learning rate or maxGradNorm with INVALID_ARGUMENT', () => {
    for (const options of [{ learningRate: -1 }, { learningRate: Number.NaN }, { maxGradNorm: -0.5 }]) {
      expect(() => createReferencePolicyTrainer({ config, weights, ...options })).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
      );
    }
  });
});

describe('createReferencePolicyTrainer: weights, checkpoints and disposal', () => {
  let directory: string;
  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'moerl-reference-trainer-'));
  });
  afterAll(() => rm(directory, { recursive: true, force: true }));

  it('exports deep copies, and is unaffected by later changes to the weights it was given', async () => {
    const given = new Map(
      [...weights].map(([name, tensor]): [string, HostTensor] => [
        name,
        { ...tensor, data: (tensor.data as Float32Array).slice() } as HostTensor,
      ]),
    );
    const trainer = createReferencePolicyTrainer({ config, weights: given });
    const before = await trainer.logprobs(batch, { routing: 'free' });
    data(given, 'lm_head.weight').fill(0);
    const exported = await trainer.exportWeights();
    expect([...exported.keys()]).toEqual([...weights.keys()]);
    data(exported, 'lm_head.weight').fill(0);
    expect(bits((await trainer.logprobs(batch, { routing: 'free' })).logprobs)).toEqual(
      bits(before.logprobs),
    );
    expect(bits(data(await trainer.exportWeights(), 'lm_head.weight'))).toEqual(
      bits(data(weights, 'lm_head.weight')),
    );
  });

  it('rejects weights that do not fit the config with CHECKPOINT_INVALID and keeps its own', async () => {
    const trainer = createReferencePolicyTrainer({ config, weights });
    const before = await trainer.logprobs(batch, { routing: 'free' });
    const missing = new Map(weights);
    missing.delete('model.norm.weight');
    expect(await codeOf(() => trainer.loadWeights(missing))).toBe('CHECKPOINT_INVALID');
    expect(bits((await trainer.logprobs(batch, { routing: 'free' })).logprobs)).toEqual(
      bits(before.logprobs),
    );
  });

  it('round-trips a trained head through config.json + model.safetensors', async () => {
    const trainer = createReferencePolicyTrainer({ config, weights, learningRate: 0.1 });
    await trainer.trainStep(batch, fixedObjective(randomVector(tokenCount, 8)), { routing: 'free' });
    const trained = await trainer.exportWeights();
    const target = join(directory, 'nested', 'checkpoint');
    await trainer.saveCheckpoint(target);
    expect((await readdir(target)).sort()).toEqual(['config.json', 'model.safetensors']);
    const fresh = createReferencePolicyTrainer({ config, weights });
    await fresh.loadCheckpoint(target);
    const loaded = await fresh.exportWeights();
    for (const [name, tensor] of trained) {
      expect(bits(data(loaded, name)), name).toEqual(bits(tensor.data as Float32Array));
    }
  });

  it('wraps missing files and a foreign config into CHECKPOINT_INVALID, with the cause attached', async () => {
    const trainer = createReferencePolicyTrainer({ config, weights });
    const absent = await errorOf(() => trainer.loadCheckpoint(join(directory, 'absent')));
    expect(absent.code).toBe('CHECKPOINT_INVALID');
    expect(MoerlError.isInstance(absent.cause, 'CONFIG_INVALID')).toBe(true);

    const configOnly = join(directory, 'config-only');
    await trainer.saveCheckpoint(configOnly);
    await rm(join(configOnly, 'model.safetensors'));
    const noWeights = await errorOf(() => trainer.loadCheckpoint(configOnly));
    expect(noWeights.code).toBe('CHECKPOINT_INVALID');
    expect(MoerlError.isInstance(noWeights.cause, 'IO_ERROR')).toBe(true);

    const foreign = join(directory, 'foreign');
    await trainer.saveCheckpoint(foreign);
    await writeHfConfigFile(
      join(foreign, 'config.json'),
      createModelConfig({ ...config, ropeTheta: 500_000 }),
    );
    const mismatch = await errorOf(() => trainer.loadCheckpoint(foreign));
    expect(mismatch.code).toBe('CHECKPOINT_INVALID');
    expect(mismatch.message).toContain('ropeTheta: checkpoint 500000, trainer 10000');

    const corrupt = join(directory, 'corrupt');
    await trainer.saveCheckpoint(corrupt);
    await writeFile(join(corrupt, 'model.safetensors'), 'not safetensors');
    expect(await codeOf(() => trainer.loadCheckpoint(corrupt))).toBe('CHECKPOINT_INVALID');
  });

  it('refuses every call after dispose', async () => {
    const trainer = createReferencePolicyTrainer({ config, weights });
    await trainer.dispose();
    const objective = fixedObjective(new Float32Array(tokenCount));
    const calls: Array<() => Promise<unknown>> = [
      () => trainer.logprobs(batch, { routing: 'free' }),
      () => trainer.trainStep(batch, objective, { routing: 'free' }),
      () => trainer.exportWeights(),
      () => trainer.loadWeights(weights),
      () => trainer.saveCheckpoint(join(directory, 'disposed')),
      () => trainer.loadCheckpoint(directory),
    ];
    for (const call of calls) expect(await codeOf(call)).toBe('INVALID_ARGUMENT');
    await trainer.dispose();
  });
});
