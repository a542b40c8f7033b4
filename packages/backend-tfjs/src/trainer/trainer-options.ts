import { MoerlError } from '@moerl/core';
import type { ExpertComputation } from '../model/forward.js';
import type { TfjsBackendName } from '../runtime/tfjs-runtime.js';
import { ADAMW_DEFAULTS } from './adamw.js';
import { checkSchedule, type LearningRateSchedule } from './learning-rate-schedule.js';

/**
 * Options only this backend understands (`CreateTrainerOptions.backendOptions`). A type alias rather than
 * an interface, so a value of it is assignable to core's `Readonly<Record<string, unknown>>`.
 */
export type TfjsTrainerOptions = {
  /** tfjs backends to try, in order. Default: tfjs-node-gpu, tfjs-node, tfjs-wasm, tfjs-cpu. */
  readonly backends?: readonly TfjsBackendName[];
  /** Sequences per micro-batch; gradients accumulate over micro-batches. Default: the whole batch. */
  readonly microBatchSize?: number;
  /** Default `gathered`. */
  readonly experts?: ExpertComputation;
  /** Default `{ kind: 'constant' }`. */
  readonly schedule?: LearningRateSchedule;
  /** AdamW β₁, default 0.9. */
  readonly beta1?: number;
  /** AdamW β₂, default 0.999. */
  readonly beta2?: number;
  /** AdamW ε, default 1e-8. */
  readonly epsilon?: number;
  /** Decoupled weight decay on matrices, default 0. */
  readonly weightDecay?: number;
  /** Called for every skipped non-finite step. Default: `process.emitWarning` with code NON_FINITE. */
  readonly onWarning?: (warning: MoerlError) => void;
  /**
   * Coefficient of Hugging Face's load-balancing loss added to every training step (Qwen3-MoE's
   * `router_aux_loss_coef` is 0.001). Default 0: no term.
   */
  readonly routerAuxLossCoefficient?: number;
};

export interface ResolvedTrainerOptions {
  readonly backends: readonly TfjsBackendName[] | undefined;
  readonly microBatchSize: number;
  readonly experts: ExpertComputation;
  readonly schedule: LearningRateSchedule;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  readonly onWarning: (warning: MoerlError) => void;
  readonly routerAuxLossCoefficient: number;
}

function bad(field: string, expected: string, found: unknown): MoerlError {
  return new MoerlError(
    'INVALID_ARGUMENT',
    `backendOptions.${field} must be ${expected}, found ${String(found)}`,
    {
      details: { field, found },
    },
  );
}

function number(
  value: unknown,
  field: string,
  fallback: number,
  ok: (x: number) => boolean,
  expected: string,
) {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) throw bad(field, expected, value);
  return value;
}

const defaultWarning = (warning: MoerlError) => process.emitWarning(warning.message, { code: warning.code });

/** Validates `backendOptions` and fills defaults. */
export function resolveTrainerOptions(raw: Readonly<Record<string, unknown>> = {}): ResolvedTrainerOptions {
  const options = raw as TfjsTrainerOptions;
  if (options.backends !== undefined && !Array.isArray(options.backends)) {
    throw bad('backends', 'an array of tfjs backend names', options.backends);
  }
  const microBatchSize =
    options.microBatchSize === undefined
      ? Number.POSITIVE_INFINITY
      : number(
          options.microBatchSize,
          'microBatchSize',
          0,
          (x) => Number.isInteger(x) && x >= 1,
          'a positive integer',
        );
  const experts = options.experts ?? 'gathered';
  if (experts !== 'gathered' && experts !== 'dense') throw bad('experts', "'gathered' or 'dense'", experts);
  if (options.onWarning !== undefined && typeof options.onWarning !== 'function') {
    throw bad('onWarning', 'a function', options.onWarning);
  }
  const unit = (x: number) => x >= 0 && x < 1;
  return {
    backends: options.backends,
    microBatchSize,
    experts,
    schedule: checkSchedule(options.schedule ?? { kind: 'constant' }),
    beta1: number(options.beta1, 'beta1', ADAMW_DEFAULTS.beta1, unit, 'in [0, 1)'),
    beta2: number(options.beta2, 'beta2', ADAMW_DEFAULTS.beta2, unit, 'in [0, 1)'),
    epsilon: number(options.epsilon, 'epsilon', ADAMW_DEFAULTS.epsilon, (x) => x > 0, 'positive'),
    weightDecay: number(
      options.weightDecay,
      'weightDecay',
      ADAMW_DEFAULTS.weightDecay,
      (x) => x >= 0,
      'non-negative',
    ),
    onWarning: options.onWarning ?? defaultWarning,
    routerAuxLossCoefficient: number(
      options.routerAuxLossCoefficient,
      'routerAuxLossCoefficient',
      0,
      (x) => x >= 0,
      'non-negative',
    ),
  };
}
