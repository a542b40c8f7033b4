import type { StepMetrics } from '../metrics/step-metrics.js';

/** What a run tells the person watching it. The CLI draws progress bars; tests listen silently. */
export interface RunEvents {
  /** Free-form lines: chosen backends, checkpoints, resume. */
  log?(line: string): void;
  warmStart?(progress: { step: number; steps: number; loss: number }): void;
  phase?(phase: 'rollout' | 'train' | 'eval', step: number, steps: number): void;
  step?(metrics: StepMetrics, steps: number): void;
}
