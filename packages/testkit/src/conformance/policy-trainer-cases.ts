import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CreateTrainerOptions,
  createRoutingRecord,
  crossEntropyObjective,
  expectedWeights,
  type Objective,
  type PolicyTrainer,
  type PolicyTrainerCapabilities,
  type RoutingRecord,
  routingDisagreement,
  routingRow,
  sequenceTokens,
  sliceRoutingRecord,
  type TrainingBatch,
} from '@moerl/core';
import { referenceLogprobs } from '../reference/reference-logprobs.js';
import type { ReferenceModel } from '../reference/reference-model.js';
import {
  type ConformanceCase,
  check,
  checkClose,
  checkRejects,
  maxAbsDifference,
} from './conformance-case.js';
import { conformanceFixture } from './conformance-fixture.js';

export interface PolicyTrainerSubject {
  readonly name: string;
  /** Builds a fresh trainer; the suite disposes it. */
  create(options: CreateTrainerOptions): Promise<PolicyTrainer>;
  readonly capabilities: PolicyTrainerCapabilities;
  /** Largest accepted |logprob − reference logprob|. Default 1e-3 (float32 backends). */
  readonly tolerance?: number;
}

export type PolicyTrainerCase = ConformanceCase<PolicyTrainerSubject, keyof PolicyTrainerCapabilities>;

/**
 * Reference logprobs (and entropy) of every response token of `batch`, flattened in sequence order,
 * replaying `options.routing` where given; `routing` is always the reference router's free choice
 * (prompt + response − 1 positions per sequence), whatever was replayed.
 */
export function referenceBatchLogprobs(
  model: ReferenceModel,
  batch: TrainingBatch,
  options: { temperature: number; routing?: readonly RoutingRecord[]; entropy?: boolean },
): { logprobs: Float32Array; entropy: Float32Array; routing: RoutingRecord[] } {
  const logprobs: number[] = [];
  const entropy: number[] = [];
  const routing: RoutingRecord[] = [];
  batch.sequences.forEach((sequence, index) => {
    const tokens = sequenceTokens(sequence);
    const replay = options.routing?.[index];
    const result = referenceLogprobs(model, tokens, {
      temperature: options.temperature,
      entropy: options.entropy ?? false,
      ...(replay === undefined ? {} : { routing: replay }),
    });
    const start = sequence.promptIds.length - 1;
    logprobs.push(...result.logprobs.subarray(start));
    if (result.entropy !== undefined) entropy.push(...result.entropy.subarray(start));
    routing.push(sliceRoutingRecord(model.forward(tokens).routing, 0, tokens.length - 1));
  });
  return { logprobs: Float32Array.from(logprobs), entropy: Float32Array.from(entropy), routing };
}

async function withTrainer(
  subject: PolicyTrainerSubject,
  run: (trainer: PolicyTrainer) => Promise<void>,
  options: Partial<CreateTrainerOptions> = {},
): Promise<void> {
  const fixture = conformanceFixture();
  const trainer = await subject.create({
    config: fixture.config,
    weights: fixture.weights,
    seed: 7,
    ...options,
  });
  try {
    await run(trainer);
  } finally {
    await trainer.dispose();
  }
}

/** −mean(logprob) over every response token (core's `crossEntropyObjective`): its gradient is −1/N per token. */
export const negativeMeanLogprobObjective = crossEntropyObjective;

/** A random but valid routing for every sequence of the batch, from another model's choices. */
function foreignRouting(batch: TrainingBatch): RoutingRecord[] {
  const { otherReference } = conformanceFixture();
  return batch.sequences.map((sequence) => {
    const tokens = sequenceTokens(sequence);
    return sliceRoutingRecord(otherReference.forward(tokens).routing, 0, tokens.length - 1);
  });
}

const tolerance = (subject: PolicyTrainerSubject) => subject.tolerance ?? 1e-3;

export const policyTrainerCases: readonly PolicyTrainerCase[] = [
  {
    name: 'declares specification v1, a backend name, capabilities and its config',
    requires: [],
    run: (subject) =>
      withTrainer(subject, async (trainer) => {
        check(
          trainer.specificationVersion === 'v1',
          () => `specificationVersion: expected v1, found ${trainer.specificationVersion}`,
        );
        check(
          typeof trainer.backendName === 'string' && trainer.backendName.length > 0,
          () => 'backendName is empty',
        );
        for (const key of ['recordRouting', 'routingReplay', 'entropy', 'checkpoints'] as const) {
          check(
            typeof trainer.capabilities[key] === 'boolean',
            () => `capabilities.${key} must be a boolean`,
          );
        }
        check(
          trainer.config.vocabSize === conformanceFixture().config.vocabSize,
          () => 'config differs from the one given',
        );
      }),
  },
  {
    name: 'free-mode logprobs of ragged sequences match the reference (temperature 1 and 0.7)',
    requires: [],
    run: (subject) =>
      withTrainer(subject, async (trainer) => {
        const { batch, reference } = conformanceFixture();
        for (const temperature of [1, 0.7]) {
          const result = await trainer.logprobs(batch, { routing: 'free', temperature });
          check(
            result.sequenceOffsets.length === 3 &&
              result.sequenceOffsets[0] === 0 &&
              result.sequenceOffsets[1] === 4 &&
              result.sequenceOffsets[2] === 6,
            () => `sequenceOffsets: expected [0, 4, 6], found [${[...result.sequenceOffsets].join(', ')}]`,
          );
          const expected = referenceBatchLogprobs(reference, batch, { temperature });
          checkClose(
            result.logprobs,
            expected.logprobs,
            tolerance(subject),
            `logprobs at temperature ${temperature}`,
          );
        }
      }),
  },
  {
    name: 'free mode returns the routing the reference router chooses (prompt + response − 1 positions)',
    requires: ['recordRouting'],
    run: (subject) =>
      withTrainer(subject, async (trainer) => {
        const { batch, reference, config } = conformanceFixture();
        const result = await trainer.logprobs(batch, { routing: 'free' });
        const expected = referenceBatchLogprobs(reference, batch, { temperature: 1 }).routing;
        check(
          result.routing?.length === 2,
          () => `expected 2 routing records, found ${result.routing?.length}`,
        );
        result.routing.forEach((record, index) => {
          const want = expected[index]!;
          check(
            record.positions === want.positions &&
              record.moeLayers === want.moeLayers &&
              record.topK === config.topK,
            () =>
              `sequence ${index}: routing shape [${record.positions}][${record.moeLayers}][${record.topK}], expected [${want.positions}][${want.moeLayers}][${config.topK}]`,
          );
          const disagreement = routingDisagreement(record, want).overall;
          // Float32 backends may flip a near-tie; more than 2% of choices means a different router.
          check(
            disagreement <= 0.02,
            () =>
              `sequence ${index}: ${(disagreement * 100).toFixed(1)}% of expert choices differ from the reference`,
          );
        });
      }),
  },
  {
    name: 'replaying its own recorded routing reproduces free-mode logprobs',
    requires: ['recordRouting', 'routingReplay'],
    run: (subject) =>
      withTrainer(subject, async (trainer) => {
        const { batch } = conformanceFixture();
        const free = await trainer.logprobs(batch, { routing: 'free' });
        const recorded = free.routing;
        check(
          recorded?.length === batch.sequences.length,
          () =>
            `free mode returned ${recorded?.length ?? 'no'} routing records for ${batch.sequences.length} sequences`,
        );
        const replayBatch = {
          sequences: batch.sequences.map((sequence, index) => ({
            ...sequence,
            routing: recorded[index]!,
          })),
        };
        const replayed = await trainer.logprobs(replayBatch, { routing: 'replay' });
        checkClose(replayed.logprobs, free.logprobs, 1e-5, 'replayed vs free logprobs');
      }),
  },
  {
    name: 'replaying a foreign routing matches the reference replay (gate = softmax restricted to replayed experts)',
    requires: ['routingReplay'],
    run: (subject) =>
      withTrainer(subject, async (trainer) => {
        const { batch, reference } = conformanceFixture();
        const routing = foreignRouting(batch);
        const replayBatch = {
          sequences: batch.sequences.map((sequence, index) => ({ ...sequence, routing: routing[index]! })),
        };
        const replayed = await trainer.logprobs(replayBatch, { routing: 'replay' });
        const expected = referenceBatchLogprobs(reference, batch, { temperature: 1, routing });
        checkClose(replayed.logprobs, expected.logprobs, tolerance(subject), 'replayed logprobs');
        const free = referenceBatchLogprobs(reference, batch, { temperature: 1 });
        // Guards the fixture itself: the foreign routing must change something, or this case proves nothing.
        check(
          maxAbsDifference(expected.logprobs, free.logprobs, 'fixture') > 1e-3,
          () => 'fixture routing equals free routing',
        );
      }),
  },
  {
    name: 'replay rejects missing routing (ROUTING_MISSING) and mis-shaped routing (ROUTING_SHAPE)',
    requires: ['routingReplay'],
    run: (subject) =>
      withTrainer(subject, async (trainer) => {
        const { batch, config } = conformanceFixture();
        const routing = foreignRouting(batch);
        const first = batch.sequences[0]!;
        const second = batch.sequences[1]!;
        const withRouting = (record: RoutingRecord | undefined): TrainingBatch => ({
          sequences: [
            { ...first, ...(record === undefined ? {} : { routing: record }) },
            { ...second, routing: routing[1]! },
          ],
        });
        await checkRejects(
          () => trainer.logprobs(withRouting(undefined), { routing: 'replay' }),
          'ROUTING_MISSING',
          'no routing',
        );
        const good = routing[0]!;
        // Well formed but for its layer count: every position repeats its first layer's (distinct) experts
        // in one extra layer. A record of zeros would be rejected for naming expert 0 twice instead.
        const extraLayer = createRoutingRecord(
          {
            positions: good.positions,
            moeLayers: good.moeLayers + 1,
            topK: good.topK,
            numExperts: config.numExperts,
          },
          Array.from({ length: good.positions }, (_, position) => [
            ...routingRow(good, position, 0),
            ...good.experts.subarray(
              position * good.moeLayers * good.topK,
              (position + 1) * good.moeLayers * good.topK,
            ),
          ]).flat(),
        );
        await checkRejects(
          () => trainer.logprobs(withRouting(extraLayer), { routing: 'replay' }),
          'ROUTING_SHAPE',
          'one MoE layer too many',
        );
        const outOfRange = {
          ...good,
          experts: good.experts.map((id, index) => (index === 0 ? config.numExperts : id)),
        };
        await checkRejects(
          () => trainer.logprobs(withRouting(outOfRange), { routing: 'replay' }),
          'ROUTING_SHAPE',
          'expert id ≥ numExperts',
        );
        const tooShort = sliceRoutingRecord(good, 0, good.positions - 1);
        await checkRejects(
          () => trainer.logprobs(withRouting(tooShort), { routing: 'replay' }),
          'ROUTING_SHAPE',
          'one position too few',
        );
        await checkRejects(
          () =>
            trainer.trainStep(withRouting(extraLayer), negativeMeanLogprobObjective(), { routing: 'replay' }),
          'ROUTING_SHAPE',
          'trainStep with mis-shaped routing',
        );
      }),
  },
  {
    name: 'returns per-token entropy matching the reference',
    requires: ['entropy'],
    run: (subject) =>
      withTrainer(subject, async (trainer) => {
        const { batch, reference } = conformanceFixture();
        const result = await trainer.logprobs(batch, {
          routing: 'free',
          temperature: 0.9,
          returnEntropy: true,
        });
        check(result.entropy !== undefined, () => 'entropy was asked for and not returned');
        checkClose(
          result.entropy,
          referenceBatchLogprobs(reference, batch, { temperature: 0.9, entropy: true }).entropy,
          tolerance(subject),
          'entropy',
        );
      }),
  },
  {
    name: 'exportWeights returns every expected weight, unchanged before training; loadWeights replaces them',
    requires: [],
    run: (subject) =>
      withTrainer(subject, async (trainer) => {
        const { config, weights, otherWeights, otherReference, batch } = conformanceFixture();
        const exported = await trainer.exportWeights();
        for (const spec of expectedWeights(config)) {
          const tensor = exported.get(spec.name);
          check(tensor !== undefined, () => `exportWeights lacks ${spec.name}`);
          check(tensor.dtype === 'F32', () => `${spec.name}: dtype ${tensor.dtype}, expected F32`);
          check(
            tensor.shape.join(',') === spec.shape.join(','),
            () => `${spec.name}: shape [${tensor.shape}], expected [${spec.shape}]`,
          );
          checkClose(tensor.data, weights.get(spec.name)!.data as Float32Array, 1e-6, spec.name);
        }
        check(
          exported.size === expectedWeights(config).length,
          () => `exportWeights returned ${exported.size} tensors, expected ${expectedWeights(config).length}`,
        );
        await trainer.loadWeights(otherWeights);
        const result = await trainer.logprobs(batch, { routing: 'free' });
        checkClose(
          result.logprobs,
          referenceBatchLogprobs(otherReference, batch, { temperature: 1 }).logprobs,
          tolerance(subject),
          'logprobs after loadWeights',
        );
      }),
  },
  {
    name: 'trainStep follows the objective gradient: −mean logprob falls over a few steps',
    requires: [],
    run: (subject) =>
      withTrainer(
        subject,
        async (trainer) => {
          const { batch } = conformanceFixture();
          const objective = negativeMeanLogprobObjective();
          const before = await trainer.logprobs(batch, { routing: 'free' });
          const initialLoss = objective.evaluate(before).loss;
          let first: number | undefined;
          for (let step = 0; step < 5; step++) {
            const result = await trainer.trainStep(batch, objective, { routing: 'free' });
            check(!result.skipped, () => `step ${step} was skipped`);
            check(
              Number.isFinite(result.gradNorm) && result.gradNorm > 0,
              () => `step ${step}: gradNorm ${result.gradNorm}`,
            );
            first ??= result.loss;
          }
          check(
            Math.abs(first! - initialLoss) <= 1e-3,
            () => `first step's loss ${first} differs from the objective's ${initialLoss}`,
          );
          const after = objective.evaluate(await trainer.logprobs(batch, { routing: 'free' })).loss;
          check(after < initialLoss - 1e-3, () => `loss did not fall: ${initialLoss} → ${after}`);
        },
        { learningRate: 1e-2 },
      ),
  },
  {
    name: 'a non-finite loss or gradient skips the step and leaves the weights unchanged',
    requires: [],
    run: (subject) =>
      withTrainer(subject, async (trainer) => {
        const { batch } = conformanceFixture();
        const before = await trainer.logprobs(batch, { routing: 'free' });
        const nanObjective: Objective = {
          name: 'nan',
          evaluate: ({ logprobs }) => ({
            loss: Number.NaN,
            gradient: new Float32Array(logprobs.length).fill(Number.NaN),
            metrics: {},
          }),
        };
        // A finite loss does not make the step safe: one NaN gradient entry must skip it too.
        const nanGradientObjective: Objective = {
          name: 'nan-gradient',
          evaluate: ({ logprobs }) => {
            const gradient = new Float32Array(logprobs.length).fill(-1 / Math.max(1, logprobs.length));
            gradient[gradient.length - 1] = Number.NaN;
            return { loss: 1, gradient, metrics: {} };
          },
        };
        for (const [objective, what] of [
          [nanObjective, 'a NaN loss'],
          [nanGradientObjective, 'a finite loss with a NaN gradient entry'],
        ] as const) {
          const result = await trainer.trainStep(batch, objective, { routing: 'free' });
          check(result.skipped, () => `${what} was not reported as skipped`);
          checkClose(
            (await trainer.logprobs(batch, { routing: 'free' })).logprobs,
            before.logprobs,
            0,
            `logprobs after a skipped step (${what})`,
          );
        }
      }),
  },
  {
    name: 'saveCheckpoint / loadCheckpoint restore the weights',
    requires: ['checkpoints'],
    run: (subject) => {
      const { batch, otherWeights } = conformanceFixture();
      return withTrainer(subject, async (trainer) => {
        const directory = await mkdtemp(join(tmpdir(), 'moerl-conformance-'));
        try {
          const expected = await trainer.logprobs(batch, { routing: 'free' });
          await trainer.saveCheckpoint(directory);
          await trainer.loadWeights(otherWeights);
          await trainer.loadCheckpoint(directory);
          checkClose(
            (await trainer.logprobs(batch, { routing: 'free' })).logprobs,
            expected.logprobs,
            1e-6,
            'logprobs after loadCheckpoint',
          );
          await checkRejects(
            () => trainer.loadCheckpoint(join(directory, 'absent')),
            'CHECKPOINT_INVALID',
            'loading a missing checkpoint',
          );
        } finally {
          await rm(directory, { recursive: true, force: true });
        }
      });
    },
  },
];
