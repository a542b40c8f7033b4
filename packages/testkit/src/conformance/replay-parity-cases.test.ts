import { describe, expect, it } from 'vitest';
import { createReferencePolicyTrainer } from '../reference/reference-policy-trainer.js';
import { createReferenceRolloutEngine } from '../reference/reference-rollout-engine.js';
import { describeReplayParity } from '../vitest/describe-conformance.js';
import { ConformanceError } from './conformance-case.js';
import { conformanceFixture } from './conformance-fixture.js';
import { type ReplayParitySubject, replayParityCases } from './replay-parity-cases.js';

const reference: ReplayParitySubject = {
  name: 'reference engine + reference trainer',
  createEngine: async (options) => createReferenceRolloutEngine(options),
  createTrainer: async (options) => createReferencePolicyTrainer(options),
  capabilities: { engineRecordsRouting: true, trainerReplaysRouting: true, trainerRecordsRouting: true },
};

describeReplayParity(reference);

describe('replay parity cases reject a mismatched pair', () => {
  // An engine that computes with bf16-rounded weights although fp32 was asked for: the mismatch R3 cannot
  // remove entirely (the logits differ even with identical routing), so the fp32 parity checks must fail.
  const bf16Engine: ReplayParitySubject = {
    ...reference,
    name: 'bf16 engine posing as fp32',
    createEngine: async (options) => createReferenceRolloutEngine({ ...options, precision: 'bf16' }),
  };

  it('catches engine logprobs that the replaying trainer does not reproduce', async () => {
    await expect(replayParityCases[0]!.run(bf16Engine)).rejects.toThrow(ConformanceError);
  });

  it('catches a trainer that replays nothing and routes with other weights', async () => {
    const otherTrainer: ReplayParitySubject = {
      ...reference,
      createTrainer: async (options) =>
        createReferencePolicyTrainer({ ...options, weights: conformanceFixture().otherWeights }),
    };
    await expect(replayParityCases[1]!.run(otherTrainer)).rejects.toThrow(/expert choices differ/);
  });
});
