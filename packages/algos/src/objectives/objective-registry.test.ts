import type { Objective } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { expectMoerlError, randomBatch } from '../__fixtures__/random-batch.js';
import { createObjectiveRegistry } from './objective-registry.js';
import { computePolicyObjective } from './policy-objective.js';

describe('objective registry', () => {
  const { batch, logprobs } = randomBatch(70, { sequences: 4, logRatioScale: 0.6 });
  const input = { logprobs: Float32Array.from(logprobs), sequenceOffsets: batch.sequenceOffsets };

  it('holds the built-ins by name', () => {
    expect(createObjectiveRegistry().list()).toEqual([
      'dapo',
      'dr-grpo',
      'grpo',
      'gspo',
      'gspo-token',
      'ppo-clip',
    ]);
    expect(createObjectiveRegistry({ builtIns: false }).list()).toEqual([]);
  });

  it('grpo is ppo-clip; dapo and dr-grpo are ppo-clip with their defaults', () => {
    const registry = createObjectiveRegistry();
    const loss = (name: string) => registry.create(name, { batch }).evaluate(input).loss;
    expect(loss('grpo')).toBe(loss('ppo-clip'));
    expect(registry.create('grpo', { batch }).name).toBe('grpo');
    const reference = (config: object) =>
      computePolicyObjective('ppo-clip', batch, input.logprobs, config).loss;
    expect(loss('dapo')).toBe(reference({ clipRatioHigh: 0.28 }));
    expect(loss('dapo')).not.toBe(loss('ppo-clip'));
    expect(loss('dr-grpo')).toBe(reference({ lossAggMode: 'seq-mean-token-sum-norm' }));
    // Options given to create override a preset's defaults.
    expect(registry.create('dapo', { batch, clipRatioHigh: 0.2 }).evaluate(input).loss).toBe(
      loss('ppo-clip'),
    );
  });

  it('refuses duplicates unless asked to replace, and names unknown objectives', () => {
    const registry = createObjectiveRegistry();
    const stub = (): Objective => ({
      name: 'stub',
      evaluate: () => ({ loss: 0, gradient: new Float32Array(), metrics: {} }),
    });
    expectMoerlError(() => registry.register('gspo', stub), 'INVALID_ARGUMENT', 'name');
    registry.register('gspo', stub, { replace: true });
    expect(registry.create('gspo', { batch }).name).toBe('stub');
    expectMoerlError(() => registry.create('nope', { batch }), 'INVALID_ARGUMENT', 'name');
    expectMoerlError(() => registry.register('', stub), 'INVALID_ARGUMENT', 'name');
  });
});
