import {
  type CreateEngineOptions,
  DEFAULT_SAMPLING_PARAMS,
  type GenerateRequest,
  type RolloutEngine,
  type RolloutEngineCapabilities,
  routingDisagreement,
  type SamplingParams,
  sequenceTokens,
  sliceRoutingRecord,
  type Trajectory,
  validateRoutingRecord,
} from '@moerl/core';
import { referenceLogprobs } from '../reference/reference-logprobs.js';
import type { ReferenceModel } from '../reference/reference-model.js';
import { type ConformanceCase, check, checkClose, checkRejects } from './conformance-case.js';
import { conformanceFixture } from './conformance-fixture.js';

export interface RolloutEngineSubject {
  readonly name: string;
  /** Builds a fresh engine; the suite disposes it. Cases ask for `precision: 'fp32'`. */
  create(options: CreateEngineOptions): Promise<RolloutEngine>;
  readonly capabilities: RolloutEngineCapabilities;
  /** Largest accepted |engine logprob − reference logprob| at fp32. Default 1e-3. */
  readonly tolerance?: number;
}

// `-?` and NonNullable so optional flags (seedFork) count as boolean capabilities too.
type BooleanCapability = {
  [K in keyof RolloutEngineCapabilities]-?: NonNullable<RolloutEngineCapabilities[K]> extends boolean
    ? K
    : never;
}[keyof RolloutEngineCapabilities];

export type RolloutEngineCase = ConformanceCase<RolloutEngineSubject, BooleanCapability>;

const requests: readonly GenerateRequest[] = [
  { id: 'a', groupId: 'g0', promptIds: Int32Array.of(1, 7, 3) },
  { id: 'b', groupId: 'g1', promptIds: Int32Array.of(11, 25, 0, 31, 8, 4) },
];

const sampling = (overrides: Partial<SamplingParams> = {}): SamplingParams => ({
  ...DEFAULT_SAMPLING_PARAMS,
  temperature: 0.8,
  maxNewTokens: 6,
  seed: 3,
  ...overrides,
});

async function withEngine(
  subject: RolloutEngineSubject,
  run: (engine: RolloutEngine) => Promise<void>,
): Promise<void> {
  const { config, weights } = conformanceFixture();
  const engine = await subject.create({ config, weights, weightVersion: 0, precision: 'fp32' });
  try {
    await run(engine);
  } finally {
    await engine.dispose();
  }
}

/** Checks the engine's logprobs (and routing, when recorded) against the reference, teacher-forced. */
function checkAgainstReference(
  trajectory: Trajectory,
  reference: ReferenceModel,
  temperature: number,
  tolerance: number,
  checkRouting: boolean,
): void {
  const tokens = sequenceTokens(trajectory);
  const expected = referenceLogprobs(reference, tokens, { temperature });
  checkClose(
    trajectory.engineLogprobs,
    expected.logprobs.subarray(trajectory.promptIds.length - 1),
    tolerance,
    `${trajectory.id}: engine logprobs`,
  );
  if (checkRouting && trajectory.routing !== null) {
    const want = sliceRoutingRecord(reference.forward(tokens).routing, 0, tokens.length - 1);
    const disagreement = routingDisagreement(trajectory.routing, want).overall;
    check(
      disagreement <= 0.02,
      () =>
        `${trajectory.id}: ${(disagreement * 100).toFixed(1)}% of expert choices differ from the reference`,
    );
  }
}

/** Checks that `actual` repeats `expected` token for token, logprobs within `tolerance`, same routing. */
function checkSameSample(actual: Trajectory, expected: Trajectory, tolerance: number, label: string): void {
  check(
    [...actual.responseIds].join() === [...expected.responseIds].join(),
    () => `${label}: tokens ${[...actual.responseIds].join()}, expected ${[...expected.responseIds].join()}`,
  );
  checkClose(actual.engineLogprobs, expected.engineLogprobs, tolerance, `${label}: engine logprobs`);
  if (actual.routing !== null && expected.routing !== null) {
    check(
      actual.routing.positions === expected.routing.positions,
      () =>
        `${label}: routing of ${actual.routing?.positions} positions, expected ${expected.routing?.positions}`,
    );
    const disagreement = routingDisagreement(actual.routing, expected.routing).overall;
    check(
      disagreement <= 0.02,
      () => `${label}: ${(disagreement * 100).toFixed(1)}% of expert choices differ from the request alone`,
    );
  }
}

export const rolloutEngineCases: readonly RolloutEngineCase[] = [
  {
    name: 'declares specification v1, a backend name, capabilities and its config',
    requires: [],
    run: (subject) =>
      withEngine(subject, async (engine) => {
        check(
          engine.specificationVersion === 'v1',
          () => `specificationVersion: expected v1, found ${engine.specificationVersion}`,
        );
        check(
          typeof engine.backendName === 'string' && engine.backendName.length > 0,
          () => 'backendName is empty',
        );
        check(
          Array.isArray(engine.capabilities.precisions) && engine.capabilities.precisions.includes('fp32'),
          () => 'precisions must include fp32',
        );
        check(
          engine.stats().weightVersion === 0,
          () => `stats().weightVersion: expected 0, found ${engine.stats().weightVersion}`,
        );
      }),
  },
  {
    name: 'generates one well-formed trajectory per request, in order, for prompts of different lengths',
    requires: [],
    run: (subject) =>
      withEngine(subject, async (engine) => {
        const { config } = conformanceFixture();
        const trajectories = await engine.generate(requests, sampling());
        check(
          trajectories.length === requests.length,
          () => `expected ${requests.length} trajectories, found ${trajectories.length}`,
        );
        trajectories.forEach((trajectory, index) => {
          const request = requests[index]!;
          check(
            trajectory.groupId === request.groupId,
            () => `trajectory ${index}: groupId ${trajectory.groupId}, expected ${request.groupId}`,
          );
          check(
            [...trajectory.promptIds].join() === [...request.promptIds].join(),
            () => `trajectory ${index}: promptIds changed`,
          );
          const length = trajectory.responseIds.length;
          check(
            length >= 1 && length <= 6,
            () => `trajectory ${index}: ${length} response tokens, expected 1..6`,
          );
          check(
            trajectory.responseIds.every((id) => id >= 0 && id < config.vocabSize),
            () => `trajectory ${index}: token outside the vocabulary`,
          );
          check(
            trajectory.engineLogprobs.length === length,
            () => `trajectory ${index}: ${trajectory.engineLogprobs.length} logprobs for ${length} tokens`,
          );
          check(
            trajectory.engineLogprobs.every((value) => value <= 0 && Number.isFinite(value)),
            () => `trajectory ${index}: logprobs must be finite and ≤ 0`,
          );
          check(
            trajectory.finishReason === 'length',
            () => `trajectory ${index}: finishReason ${trajectory.finishReason} without stop tokens`,
          );
          check(
            trajectory.weightVersion === 0,
            () => `trajectory ${index}: weightVersion ${trajectory.weightVersion}, expected 0`,
          );
        });
      }),
  },
  {
    name: 'fp32 logprobs of the sampled tokens match the reference at the sampling temperature',
    requires: [],
    run: (subject) =>
      withEngine(subject, async (engine) => {
        const { reference } = conformanceFixture();
        for (const trajectory of await engine.generate(requests, sampling())) {
          checkAgainstReference(trajectory, reference, 0.8, subject.tolerance ?? 1e-3, false);
        }
      }),
  },
  {
    name: 'records the routing of every fed position (prompt + response − 1), matching the reference router',
    requires: ['recordRouting'],
    run: (subject) =>
      withEngine(subject, async (engine) => {
        const { reference, config } = conformanceFixture();
        for (const trajectory of await engine.generate(requests, sampling())) {
          check(
            trajectory.routing !== null,
            () => `${trajectory.id}: routing is null although recordRouting is claimed`,
          );
          validateRoutingRecord(trajectory.routing, {
            numExperts: config.numExperts,
            moeLayers: reference.moeLayers.length,
            topK: config.topK,
            positions: trajectory.promptIds.length + trajectory.responseIds.length - 1,
          });
          checkAgainstReference(trajectory, reference, 0.8, subject.tolerance ?? 1e-3, true);
        }
      }),
  },
  {
    name: 'the same seed gives the same tokens',
    requires: [],
    run: (subject) =>
      withEngine(subject, async (engine) => {
        const first = await engine.generate(requests, sampling({ seed: 11 }));
        const second = await engine.generate(requests, sampling({ seed: 11 }));
        first.forEach((trajectory, index) => {
          check(
            [...trajectory.responseIds].join() === [...second[index]!.responseIds].join(),
            () => `request ${index}: same seed, different tokens`,
          );
        });
      }),
  },
  {
    name: 'a request with seedFork k samples as it would at position k, wherever it sits in the call',
    requires: ['seedFork'],
    run: (subject) =>
      withEngine(subject, async (engine) => {
        const params = sampling({ seed: 17 });
        // The requests alone: a samples from fork 0, b from fork 1.
        const alone = await engine.generate(requests, params);
        // The same requests moved behind another prompt, in swapped order, pinned to their old forks.
        const other: GenerateRequest = { id: 'c', groupId: 'g2', promptIds: Int32Array.of(5, 9) };
        const moved = await engine.generate(
          [{ ...requests[1]!, seedFork: 1 }, other, { ...requests[0]!, seedFork: 0 }],
          params,
        );
        check(moved.length === 3, () => `expected 3 trajectories, found ${moved.length}`);
        const tolerance = subject.tolerance ?? 1e-3;
        checkSameSample(moved[2]!, alone[0]!, tolerance, 'request a at position 2 with seedFork 0');
        checkSameSample(moved[0]!, alone[1]!, tolerance, 'request b at position 0 with seedFork 1');
      }),
  },
  {
    name: 'rejects a seedFork that is not a non-negative safe integer with INVALID_ARGUMENT',
    requires: ['seedFork'],
    run: (subject) =>
      withEngine(subject, async (engine) => {
        for (const seedFork of [-1, 1.5, Number.NaN]) {
          await checkRejects(
            () => engine.generate([{ ...requests[0]!, seedFork }], sampling()),
            'INVALID_ARGUMENT',
            `seedFork ${seedFork}`,
          );
        }
      }),
  },
  {
    name: 'temperature 0 decodes greedily (the reference argmax at every step)',
    requires: [],
    run: (subject) =>
      withEngine(subject, async (engine) => {
        const { reference, config } = conformanceFixture();
        for (const trajectory of await engine.generate(requests, sampling({ temperature: 0 }))) {
          const tokens = sequenceTokens(trajectory);
          const { logits } = reference.forward(tokens);
          for (let step = 0; step < trajectory.responseIds.length; step++) {
            const row = logits.subarray(
              (trajectory.promptIds.length - 1 + step) * config.vocabSize,
              (trajectory.promptIds.length + step) * config.vocabSize,
            );
            let best = 0;
            for (let id = 1; id < row.length; id++) if (row[id]! > row[best]!) best = id;
            check(
              trajectory.responseIds[step] === best,
              () => `${trajectory.id} step ${step}: token ${trajectory.responseIds[step]}, argmax ${best}`,
            );
          }
        }
      }),
  },
  {
    name: 'a stop token ends the sequence with finishReason "stop" and is kept in the response',
    requires: [],
    run: (subject) =>
      withEngine(subject, async (engine) => {
        const { config } = conformanceFixture();
        const everyToken = Array.from({ length: config.vocabSize }, (_, id) => id);
        for (const trajectory of await engine.generate(requests, sampling({ stopTokenIds: everyToken }))) {
          check(
            trajectory.responseIds.length === 1,
            () => `${trajectory.id}: ${trajectory.responseIds.length} tokens after a stop token`,
          );
          check(
            trajectory.finishReason === 'stop',
            () => `${trajectory.id}: finishReason ${trajectory.finishReason}, expected stop`,
          );
        }
      }),
  },
  {
    name: 'updateWeights changes the model and stamps the new version on later trajectories',
    requires: [],
    run: (subject) =>
      withEngine(subject, async (engine) => {
        const { otherWeights, otherReference } = conformanceFixture();
        await engine.updateWeights(otherWeights, 5);
        check(
          engine.stats().weightVersion === 5,
          () => `stats().weightVersion: expected 5, found ${engine.stats().weightVersion}`,
        );
        for (const trajectory of await engine.generate(requests, sampling())) {
          check(
            trajectory.weightVersion === 5,
            () => `${trajectory.id}: weightVersion ${trajectory.weightVersion}, expected 5`,
          );
          checkAgainstReference(trajectory, otherReference, 0.8, subject.tolerance ?? 1e-3, false);
        }
      }),
  },
];
