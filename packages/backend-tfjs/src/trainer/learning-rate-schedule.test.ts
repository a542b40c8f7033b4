import { describe, expect, it } from 'vitest';
import { checkSchedule, learningRateAt } from './learning-rate-schedule.js';

describe('learningRateAt', () => {
  it('constant is the base rate at every step', () => {
    for (const step of [0, 1, 100]) expect(learningRateAt(0.5, { kind: 'constant' }, step)).toBe(0.5);
  });

  it('warmup-cosine: linear warmup, cosine decay to the minimum, flat after totalSteps', () => {
    const schedule = { kind: 'warmup-cosine', warmupSteps: 4, totalSteps: 12, minLearningRate: 0.1 } as const;
    // Warmup: base · (step + 1) / 4.
    expect(learningRateAt(1, schedule, 0)).toBeCloseTo(0.25, 12);
    expect(learningRateAt(1, schedule, 3)).toBeCloseTo(1, 12);
    // Decay: 0.1 + 0.9 · ½(1 + cos(π · (step − 4) / 8)); halfway (step 8) is the midpoint 0.55.
    expect(learningRateAt(1, schedule, 4)).toBeCloseTo(1, 12);
    expect(learningRateAt(1, schedule, 8)).toBeCloseTo(0.55, 12);
    expect(learningRateAt(1, schedule, 6)).toBeCloseTo(0.1 + 0.45 * (1 + Math.SQRT1_2), 12);
    expect(learningRateAt(1, schedule, 12)).toBeCloseTo(0.1, 12);
    expect(learningRateAt(1, schedule, 50)).toBeCloseTo(0.1, 12);
  });

  it('rejects malformed schedules', () => {
    expect(() => checkSchedule({ kind: 'warmup-cosine', warmupSteps: 5, totalSteps: 3 })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
    expect(() => checkSchedule({ kind: 'linear' } as never)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
  });
});
