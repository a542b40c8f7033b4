// A package outside the monorepo adds an objective through the public API only.
import type { Objective, ObjectiveInput } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { createObjective, listObjectives, type ObjectiveOptions, registerObjective } from '../src/index.js';

/** Plain REINFORCE: loss = −mean over tokens of A_t · logp_t, so d(loss)/d(logp_t) = −A_t / T. */
function createReinforceObjective(options: ObjectiveOptions): Objective {
  const advantages = options.batch.advantages;
  const scale = Number(options.extra?.scale ?? 1);
  return {
    name: 'reinforce',
    evaluate(input: ObjectiveInput) {
      const tokens = input.logprobs.length;
      const gradient = new Float32Array(tokens);
      let loss = 0;
      for (let t = 0; t < tokens; t++) {
        loss -= (scale * advantages[t]! * input.logprobs[t]!) / tokens;
        gradient[t] = (-scale * advantages[t]!) / tokens;
      }
      return { loss, gradient, metrics: { tokens } };
    },
  };
}

describe('a third-party objective', () => {
  it('registers by name and is created like a built-in', () => {
    registerObjective('reinforce', createReinforceObjective);
    expect(listObjectives()).toContain('reinforce');
    expect(listObjectives()).toContain('gspo');
    const objective = createObjective('reinforce', {
      batch: { sequenceOffsets: [0, 2], oldLogprobs: [-1, -2], advantages: [1, -1] },
      extra: { scale: 2 },
    });
    const result = objective.evaluate({
      logprobs: Float32Array.from([-0.5, -1.5]),
      sequenceOffsets: Int32Array.from([0, 2]),
    });
    expect(result.loss).toBeCloseTo(-(2 * -0.5 - 2 * -1.5) / 2, 6);
    expect(Array.from(result.gradient)).toEqual([-1, 1]);
    expect(() => registerObjective('reinforce', createReinforceObjective)).toThrow(/already registered/);
  });
});
