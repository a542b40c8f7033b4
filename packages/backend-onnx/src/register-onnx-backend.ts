import {
  type CreateEngineOptions,
  type InferencePrecision,
  MoerlError,
  type RolloutBackend,
  registerBackend,
} from '@moerl/core';
import {
  createOnnxRolloutEngine,
  ONNX_BACKEND_NAME,
  type OnnxRolloutEngineOptions,
} from './engine/onnx-rollout-engine.js';

const BACKEND_OPTION_KEYS = [
  'activations',
  'prefixCache',
  'executionProvider',
  'intraOpNumThreads',
  'allowSpinning',
  'expertCompute',
  'onWarning',
] as const;

/** Maps core's `CreateEngineOptions` (with ONNX-specific `backendOptions`) to the engine's options. */
export function engineOptionsFrom(options: CreateEngineOptions): OnnxRolloutEngineOptions {
  const extra = options.backendOptions ?? {};
  for (const key of Object.keys(extra)) {
    if (!(BACKEND_OPTION_KEYS as readonly string[]).includes(key)) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `backendOptions.${key} is not an option of the onnx backend; known: ${BACKEND_OPTION_KEYS.join(', ')}`,
        { details: { field: `backendOptions.${key}` } },
      );
    }
  }
  return {
    config: options.config,
    weights: options.weights,
    ...(options.weightVersion === undefined ? {} : { weightVersion: options.weightVersion }),
    ...(options.precision === undefined ? {} : { precision: options.precision as InferencePrecision }),
    ...(options.fp8 === undefined ? {} : { fp8: options.fp8 }),
    ...(extra as Partial<OnnxRolloutEngineOptions>),
  };
}

/** The registry entry's backend object. */
export function createOnnxBackend(): RolloutBackend {
  return {
    name: ONNX_BACKEND_NAME,
    createEngine: (options) => createOnnxRolloutEngine(engineOptionsFrom(options)),
  };
}

/**
 * Registers this package as the `onnx` rollout backend in core's global registry (priority 10). Idempotent.
 * Importing the package does nothing; call this, or import `@moerl/backend-onnx/register`.
 */
export function registerOnnxBackend(priority = 10): void {
  registerBackend({ name: ONNX_BACKEND_NAME, kind: 'rollout', priority, create: createOnnxBackend });
}
