import {
  type BackendRegistry,
  type CreateEngineOptions,
  globalBackendRegistry,
  type InferencePrecision,
  MoerlError,
  type RolloutBackend,
} from '@moerl/core';
import {
  createOnnxRolloutEngine,
  ONNX_BACKEND_NAME,
  type OnnxRolloutEngineOptions,
} from './engine/onnx-rollout-engine.js';
import type { OnnxRuntimeOption } from './engine/ort-runtime.js';
import { loadOnnxRuntime } from './engine/ort-runtime.js';

/** The registry name of the engine on onnxruntime-web (WebAssembly CPU), the fallback of `onnx`. */
export const ONNX_WEB_BACKEND_NAME = 'onnx-web';

const BACKEND_OPTION_KEYS = [
  'activations',
  'runtime',
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

export interface OnnxBackendOptions {
  /** The onnxruntime its engines use (`backendOptions.runtime` of a call wins). Default `auto`. */
  readonly runtime?: OnnxRuntimeOption;
}

/** The registry entry's backend object. */
export function createOnnxBackend(options: OnnxBackendOptions = {}): RolloutBackend {
  return {
    name: options.runtime === 'web' ? ONNX_WEB_BACKEND_NAME : ONNX_BACKEND_NAME,
    createEngine: (engineOptions) =>
      createOnnxRolloutEngine({
        ...(options.runtime === undefined ? {} : { runtime: options.runtime }),
        ...engineOptionsFrom(engineOptions),
      }),
  };
}

// One registration object per runtime, built once, so registering twice is a no-op, not a conflict. Each
// loads its onnxruntime package only when the registry tries it, and fails there (BACKEND_UNAVAILABLE,
// naming why) when it cannot, so that the registry moves on and its summary line says why.
const registrations = (priority: number) =>
  [
    {
      name: ONNX_BACKEND_NAME,
      kind: 'rollout',
      priority,
      create: async () => {
        await loadOnnxRuntime('node');
        return createOnnxBackend({ runtime: 'node' });
      },
    },
    {
      name: ONNX_WEB_BACKEND_NAME,
      kind: 'rollout',
      priority,
      create: async () => {
        await loadOnnxRuntime('web');
        return createOnnxBackend({ runtime: 'web' });
      },
    },
  ] as const;
const REGISTRATIONS = new Map<number, ReturnType<typeof registrations>>();

/**
 * Registers this package's rollout backends in `registry` (default: core's global one), both at `priority` (default 10),
 * tried in this order: `onnx` (onnxruntime-node, native; an optional peer dependency) and `onnx-web`
 * (onnxruntime-web's WebAssembly CPU build, always installed). A registry resolving `auto` then reports
 * e.g. `rollout backend: onnx-web (skipped onnx: No onnxruntime could be loaded: onnxruntime-node not
 * installed …)`. Idempotent. Importing the package does nothing; call this, or import
 * `@moerl/backend-onnx/register`.
 */
export function registerOnnxBackend(
  priority = 10,
  registry: BackendRegistry = globalBackendRegistry(),
): void {
  let entries = REGISTRATIONS.get(priority);
  if (entries === undefined) {
    entries = registrations(priority);
    REGISTRATIONS.set(priority, entries);
  }
  for (const entry of entries) registry.register(entry);
}
