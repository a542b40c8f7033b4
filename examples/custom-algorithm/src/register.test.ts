import { createObjective, listObjectives } from '@moerl/algos';
import { conformanceFixture, createReferencePolicyTrainer } from '@moerl/testkit';
import { describe, expect, it } from 'vitest';
import { registerCispo } from './register-cispo.js';

function meanOf(values: Float32Array, from: number, to: number): number {
  let sum = 0;
  for (let t = from; t < to; t++) sum += values[t]!;
  return sum / (to - from);
}

describe('the plugin entry', () => {
  it('registers cispo when imported, and not before; a second registration is a no-op', async () => {
    expect(listObjectives()).not.toContain('example-cispo');
    await import('./register.js');
    expect(listObjectives()).toContain('example-cispo');
    expect(() => registerCispo()).not.toThrow();
    const objective = createObjective('example-cispo', {
      batch: { sequenceOffsets: [0, 1], oldLogprobs: [-1], advantages: [1] },
    });
    expect(objective.name).toBe('example-cispo');
  });

  it('trains a PolicyTrainer when picked by name: rewarded responses gain probability', async () => {
    await import('./register.js');
    const { config, weights, batch } = conformanceFixture();
    const trainer = createReferencePolicyTrainer({ config, weights, learningRate: 0.05 });
    const before = await trainer.logprobs(batch, { routing: 'free' });
    const [start, split, end] = [0, before.sequenceOffsets[1]!, before.sequenceOffsets[2]!];
    // Sequence 0 is rewarded, sequence 1 penalised.
    const advantages = Float32Array.from({ length: end }, (_, t) => (t < split ? 1 : -1));
    const objective = createObjective('example-cispo', {
      batch: { sequenceOffsets: before.sequenceOffsets, oldLogprobs: before.logprobs, advantages },
    });
    for (let step = 0; step < 3; step++) {
      const result = await trainer.trainStep(batch, objective, { routing: 'free' });
      expect(result.skipped).toBe(false);
    }
    const after = await trainer.logprobs(batch, { routing: 'free' });
    expect(meanOf(after.logprobs, start, split)).toBeGreaterThan(meanOf(before.logprobs, start, split));
    expect(meanOf(after.logprobs, split, end)).toBeLessThan(meanOf(before.logprobs, split, end));
    await trainer.dispose();
  });
});
