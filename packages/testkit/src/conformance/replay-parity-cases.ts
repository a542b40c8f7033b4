import {
  type CreateEngineOptions,
  type CreateTrainerOptions,
  DEFAULT_SAMPLING_PARAMS,
  type PolicyTrainer,
  type RolloutEngine,
  routingDisagreement,
  type TrainingBatch,
  type Trajectory,
} from '@moerl/core';
import { type ConformanceCase, check, checkClose } from './conformance-case.js';
import { conformanceFixture } from './conformance-fixture.js';

/** An engine and a trainer meant to be used together (e.g. backend-onnx with backend-tfjs). */
export interface ReplayParitySubject {
  readonly name: string;
  createEngine(options: CreateEngineOptions): Promise<RolloutEngine>;
  createTrainer(options: CreateTrainerOptions): Promise<PolicyTrainer>;
  /** What the pair claims: the engine records routing, the trainer replays and records it. */
  readonly capabilities: {
    readonly engineRecordsRouting: boolean;
    readonly trainerReplaysRouting: boolean;
    readonly trainerRecordsRouting: boolean;
  };
  /** Largest accepted |trainer logprob − engine logprob| at fp32. Default 1e-3. */
  readonly tolerance?: number;
}

export type ReplayParityCase = ConformanceCase<
  ReplayParitySubject,
  keyof ReplayParitySubject['capabilities']
>;

/** Samples on an fp32 engine and hands the trajectories, as a training batch, to a fresh trainer. */
async function withRollouts(
  subject: ReplayParitySubject,
  run: (trainer: PolicyTrainer, trajectories: Trajectory[], batch: TrainingBatch) => Promise<void>,
): Promise<void> {
  const { config, weights } = conformanceFixture();
  const engine = await subject.createEngine({ config, weights, weightVersion: 0, precision: 'fp32' });
  let trajectories: Trajectory[];
  try {
    trajectories = await engine.generate(
      [
        { id: 'a', groupId: 'g', promptIds: Int32Array.of(1, 7, 3) },
        { id: 'b', groupId: 'g', promptIds: Int32Array.of(1, 7, 3) },
        { id: 'c', groupId: 'h', promptIds: Int32Array.of(11, 25, 0, 31, 8) },
      ],
      { ...DEFAULT_SAMPLING_PARAMS, temperature: 1, maxNewTokens: 8, seed: 5 },
    );
  } finally {
    await engine.dispose();
  }
  const batch: TrainingBatch = {
    sequences: trajectories.map((trajectory) => ({
      promptIds: trajectory.promptIds,
      responseIds: trajectory.responseIds,
      ...(trajectory.routing === null ? {} : { routing: trajectory.routing }),
    })),
  };
  const trainer = await subject.createTrainer({ config, weights, seed: 7 });
  try {
    await run(trainer, trajectories, batch);
  } finally {
    await trainer.dispose();
  }
}

export const replayParityCases: readonly ReplayParityCase[] = [
  {
    name: "the trainer replaying the engine's routing reproduces the engine's logprobs (fp32)",
    requires: ['engineRecordsRouting', 'trainerReplaysRouting'],
    run: (subject) =>
      withRollouts(subject, async (trainer, trajectories, batch) => {
        const result = await trainer.logprobs(batch, { routing: 'replay', temperature: 1 });
        const engineLogprobs = Float32Array.from(
          trajectories.flatMap((trajectory) => [...trajectory.engineLogprobs]),
        );
        checkClose(
          result.logprobs,
          engineLogprobs,
          subject.tolerance ?? 1e-3,
          'trainer (replay) vs engine logprobs',
        );
      }),
  },
  {
    name: 'at fp32 the trainer router chooses the experts the engine recorded',
    requires: ['engineRecordsRouting', 'trainerRecordsRouting'],
    run: (subject) =>
      withRollouts(subject, async (trainer, trajectories, batch) => {
        const result = await trainer.logprobs(batch, { routing: 'free', temperature: 1 });
        check(
          result.routing?.length === trajectories.length,
          () => 'the trainer returned no routing in free mode',
        );
        result.routing.forEach((record, index) => {
          const disagreement = routingDisagreement(record, trajectories[index]!.routing!).overall;
          check(
            disagreement <= 0.02,
            () => `sequence ${index}: ${(disagreement * 100).toFixed(1)}% of expert choices differ`,
          );
        });
      }),
  },
];
