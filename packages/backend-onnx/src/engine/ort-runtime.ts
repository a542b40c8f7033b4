import { MoerlError } from '@moerl/core';
// Types only: onnxruntime-node and onnxruntime-web both re-export onnxruntime-common's API (Tensor,
// InferenceSession, env), and onnxruntime-web is the one this package always depends on.
import type * as OrtApi from 'onnxruntime-web';

/** The onnxruntime packages this engine runs on, best first. */
export type OnnxRuntimeName = 'onnxruntime-node' | 'onnxruntime-web';

/**
 * Which runtime to use: `auto` (default) takes `onnxruntime-node` (native, an optional peer dependency)
 * when it is installed and loads, else `onnxruntime-web` (its WebAssembly CPU build, which runs in Node
 * and installs from the npm registry alone); `node` or `web` asks for one and fails without it.
 */
export type OnnxRuntimeOption = 'auto' | 'node' | 'web';

export const ONNX_RUNTIME_OPTIONS: readonly OnnxRuntimeOption[] = ['auto', 'node', 'web'];

/** The part of onnxruntime-common's API the engine uses. */
export type Ort = Pick<typeof OrtApi, 'Tensor' | 'InferenceSession' | 'env'>;
export type OrtTensor = OrtApi.Tensor;
export type OrtSession = OrtApi.InferenceSession;
export type OrtSessionOptions = OrtApi.InferenceSession.SessionOptions;

export interface SkippedRuntime {
  readonly name: OnnxRuntimeName;
  readonly reason: string;
}

export interface LoadedOnnxRuntime {
  readonly name: OnnxRuntimeName;
  readonly ort: Ort;
  /** The package's version (`env.versions.common`). */
  readonly version: string;
  /** Runtimes tried before this one and why each failed. */
  readonly skipped: readonly SkippedRuntime[];
  /**
   * One line for the user, e.g. `onnx runtime: onnxruntime-web 1.30.0 (WebAssembly CPU; skipped
   * onnxruntime-node: not installed)`.
   */
  readonly summary: string;
}

const SPECIFIER: Readonly<Record<'node' | 'web', OnnxRuntimeName>> = {
  node: 'onnxruntime-node',
  web: 'onnxruntime-web',
};

// The specifier lives in a variable so that bundlers and tsc do not try to resolve the optional package.
async function importRuntime(specifier: OnnxRuntimeName): Promise<Ort> {
  const module = (await import(specifier)) as Ort & { default?: Ort };
  // Both packages are ES modules with named exports; a CommonJS interop copy keeps them under `default`.
  return typeof module.InferenceSession?.create === 'function' ? module : (module.default as Ort);
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0] ?? text;
}

/** Why a runtime did not load: "not installed" for a missing package, else the loader's first line. */
function reasonOf(specifier: OnnxRuntimeName, error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  const notFound =
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    firstLine(error).includes(`'${specifier}'`);
  return notFound ? 'not installed' : `failed to load (${firstLine(error)})`;
}

const loaded = new Map<OnnxRuntimeName, Promise<Ort>>();

function load(specifier: OnnxRuntimeName): Promise<Ort> {
  let promise = loaded.get(specifier);
  if (promise === undefined) {
    promise = importRuntime(specifier);
    // A failed import is not cached: installing the package later in the process may still work.
    promise.catch(() => loaded.delete(specifier));
    loaded.set(specifier, promise);
  }
  return promise;
}

/**
 * Loads the onnxruntime package for `option` (only now, never on import of this package) and says which one
 * it got. `auto` falls back from onnxruntime-node to onnxruntime-web and names why; `node` and `web` do not
 * fall back. Throws `BACKEND_UNAVAILABLE` naming every runtime tried and why it failed, `INVALID_ARGUMENT`
 * for an unknown option.
 */
export async function loadOnnxRuntime(option: OnnxRuntimeOption = 'auto'): Promise<LoadedOnnxRuntime> {
  if (!ONNX_RUNTIME_OPTIONS.includes(option)) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `runtime must be one of ${ONNX_RUNTIME_OPTIONS.join(', ')}, found ${String(option)}`,
      { details: { field: 'runtime', found: option, supported: ONNX_RUNTIME_OPTIONS } },
    );
  }
  const candidates: OnnxRuntimeName[] =
    option === 'auto' ? [SPECIFIER.node, SPECIFIER.web] : [SPECIFIER[option]];
  const skipped: SkippedRuntime[] = [];
  for (const name of candidates) {
    try {
      const ort = await load(name);
      const version = ort.env.versions?.common ?? 'unknown version';
      const kind = name === 'onnxruntime-web' ? 'WebAssembly CPU' : 'native';
      const why = skipped.map((skip) => `${skip.name}: ${skip.reason}`).join('; ');
      return {
        name,
        ort,
        version,
        skipped,
        summary: `onnx runtime: ${name} ${version} (${kind}${why ? `; skipped ${why}` : ''})`,
      };
    } catch (error) {
      skipped.push({ name, reason: reasonOf(name, error) });
    }
  }
  const hint =
    option === 'node'
      ? ' Install it (npm install onnxruntime-node), or use runtime: "web" or "auto".'
      : ' onnxruntime-web is a dependency of @moerl/backend-onnx; reinstall the package.';
  throw new MoerlError(
    'BACKEND_UNAVAILABLE',
    `No onnxruntime could be loaded: ${skipped.map((skip) => `${skip.name} ${skip.reason}`).join('; ')}.${hint}`,
    { details: { runtime: option, skipped } },
  );
}
