import { MoerlError } from '@moerl/core';

/**
 * - `constant`: the base learning rate at every step;
 * - `warmup-cosine`: linear warmup from base / warmupSteps to base over `warmupSteps` updates, then a cosine
 *   decay to `minLearningRate` (default 0) at `totalSteps`, constant after that.
 */
export type LearningRateSchedule =
  | { readonly kind: 'constant' }
  | {
      readonly kind: 'warmup-cosine';
      readonly warmupSteps: number;
      readonly totalSteps: number;
      readonly minLearningRate?: number;
    };

export function checkSchedule(schedule: LearningRateSchedule): LearningRateSchedule {
  if (schedule === null || typeof schedule !== 'object') {
    throw new MoerlError('INVALID_ARGUMENT', `schedule must be an object, found ${String(schedule)}`);
  }
  if (schedule.kind === 'constant') return schedule;
  if (schedule.kind !== 'warmup-cosine') {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `schedule.kind must be 'constant' or 'warmup-cosine', found ${String((schedule as { kind: unknown }).kind)}`,
      { details: { field: 'schedule.kind' } },
    );
  }
  const { warmupSteps, totalSteps, minLearningRate = 0 } = schedule;
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `schedule.warmupSteps must be a non-negative integer, found ${warmupSteps}`,
    );
  }
  if (!Number.isInteger(totalSteps) || totalSteps < warmupSteps) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `schedule.totalSteps must be an integer ≥ warmupSteps (${warmupSteps}), found ${totalSteps}`,
    );
  }
  if (!Number.isFinite(minLearningRate) || minLearningRate < 0) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `schedule.minLearningRate must be a non-negative finite number, found ${minLearningRate}`,
    );
  }
  return schedule;
}

/** The learning rate of update number `step` (0 for the first update). */
export function learningRateAt(base: number, schedule: LearningRateSchedule, step: number): number {
  if (schedule.kind === 'constant') return base;
  const { warmupSteps, totalSteps, minLearningRate = 0 } = schedule;
  if (step < warmupSteps) return (base * (step + 1)) / warmupSteps;
  const span = totalSteps - warmupSteps;
  const progress = span <= 0 ? 1 : Math.min(1, (step - warmupSteps) / span);
  return minLearningRate + (base - minLearningRate) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
