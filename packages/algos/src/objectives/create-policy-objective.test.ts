import { describe, expect, it } from 'vitest';
import { expectMoerlError, randomBatch } from '../__fixtures__/random-batch.js';
import { createPolicyObjective } from './create-policy-objective.js';
import { computePolicyObjective } from './policy-objective.js';

describe('createPolicyObjective', () => {
  const { batch, logprobs, entropy } = randomBatch(60, { sequences: 4, withMask: true });
  const input = { logprobs: Float32Array.from(logprobs), sequenceOffsets: batch.sequenceOffsets };

  it('meets the core Objective contract: float32 gradient per token from float64 math', () => {
    const objective = createPolicyObjective('gspo', { batch, lossAggMode: 'token-mean' });
    expect(objective.name).toBe('gspo');
    expect(objective.needsEntropy).toBe(false);
    const result = objective.evaluate(input);
    const reference = computePolicyObjective('gspo', batch, input.logprobs, { lossAggMode: 'token-mean' });
    expect(result.gradient).toBeInstanceOf(Float32Array);
    expect(result.gradient).toEqual(Float32Array.from(reference.gradient));
    expect(result.loss).toBe(reference.loss);
    expect(result.metrics).toEqual(reference.metrics);
    expect(Number.isFinite(result.loss)).toBe(true);
  });

  it('asks for entropy when it has an entropy bonus and returns its gradient', () => {
    const objective = createPolicyObjective('ppo-clip', { batch, entropyCoefficient: 0.01 });
    expect(objective.needsEntropy).toBe(true);
    const result = objective.evaluate({ ...input, entropy: Float32Array.from(entropy) });
    expect(result.entropyGradient).toBeInstanceOf(Float32Array);
    expect(result.metrics.entropy).toBeGreaterThan(0);
  });

  it('refuses logprobs laid out differently from the batch it was built for', () => {
    const objective = createPolicyObjective('ppo-clip', { batch });
    const shifted = Int32Array.from(batch.sequenceOffsets);
    shifted[1] = shifted[1]! + 1;
    expectMoerlError(
      () => objective.evaluate({ ...input, sequenceOffsets: shifted }),
      'INVALID_ARGUMENT',
      'sequenceOffsets',
    );
    expectMoerlError(
      () => objective.evaluate({ ...input, sequenceOffsets: batch.sequenceOffsets.slice(1) }),
      'INVALID_ARGUMENT',
      'sequenceOffsets',
    );
  });
});
