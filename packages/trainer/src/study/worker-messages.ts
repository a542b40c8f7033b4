import type { RunConfig } from '../config/run-config-schema.js';
import type { StepMetrics } from '../metrics/step-metrics.js';
import type { SerializedError } from '../run/serialized-error.js';

/** Parent → study worker: the runs to do in order, or stop after the current step. */
export type WorkerRequest =
  | {
      readonly type: 'runs';
      readonly runs: readonly { readonly config: RunConfig; readonly directory: string }[];
      readonly force: boolean;
    }
  | { readonly type: 'abort' };

/** Study worker → parent. */
export type WorkerReply =
  | {
      readonly type: 'event';
      readonly name: string;
      readonly kind: 'log' | 'warmStart' | 'phase' | 'step';
      readonly args: readonly unknown[];
    }
  | {
      readonly type: 'result';
      readonly name: string;
      readonly metrics: readonly StepMetrics[];
      readonly initialEvalAccuracy: number;
      readonly initialSeenEvalAccuracy: number;
      readonly wallSeconds: number;
    }
  | { readonly type: 'done' }
  | (SerializedError & { readonly type: 'error' });
