import { MoerlError } from '@moerl/core';
import * as tf from '@tensorflow/tfjs-core';
import { registerGradients } from './register-gradients.js';
import { registerWasmBatchMatMul } from './register-wasm-batch-mat-mul.js';

/** The TensorFlow.js backends this package can run on, best first. */
export type TfjsBackendName = 'tfjs-node-gpu' | 'tfjs-node' | 'tfjs-wasm' | 'tfjs-cpu';

export const TFJS_BACKEND_ORDER: readonly TfjsBackendName[] = [
  'tfjs-node-gpu',
  'tfjs-node',
  'tfjs-wasm',
  'tfjs-cpu',
];

interface BackendSource {
  /** npm package providing the backend; loaded only when asked for. */
  readonly specifier: string;
  /** The name tfjs-core registers it under. */
  readonly tfName: string;
}

const SOURCES: Readonly<Record<TfjsBackendName, BackendSource>> = {
  'tfjs-node-gpu': { specifier: '@tensorflow/tfjs-node-gpu', tfName: 'tensorflow' },
  'tfjs-node': { specifier: '@tensorflow/tfjs-node', tfName: 'tensorflow' },
  'tfjs-wasm': { specifier: '@tensorflow/tfjs-backend-wasm', tfName: 'wasm' },
  'tfjs-cpu': { specifier: '@tensorflow/tfjs-backend-cpu', tfName: 'cpu' },
};

export interface TfjsBackendSelection {
  readonly name: TfjsBackendName;
  /** Backends tried before this one and why each failed. */
  readonly skipped: ReadonlyArray<{ readonly name: TfjsBackendName; readonly reason: string }>;
  /** One line for the user, e.g. "tfjs backend: tfjs-wasm (skipped tfjs-node-gpu: not installed; …)". */
  readonly summary: string;
}

// The specifier lives in a variable so bundlers and tsc do not try to resolve optional packages.
async function importOptional(specifier: string): Promise<unknown> {
  return import(specifier);
}

let active: TfjsBackendName | undefined;

/**
 * Loads one backend package (only now, never on import of this package) and makes it the active
 * tfjs backend. Throws `BACKEND_UNAVAILABLE` when the package is not installed or fails to initialise.
 */
export async function activateTfjsBackend(name: TfjsBackendName): Promise<void> {
  const source = SOURCES[name];
  if (source === undefined) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `Unknown tfjs backend "${String(name)}"; expected one of ${TFJS_BACKEND_ORDER.join(', ')}`,
      { details: { found: name } },
    );
  }
  registerGradients();
  if (active === name && tf.getBackend() === source.tfName) return;
  try {
    await importOptional(source.specifier);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message = (error as Error).message;
    // A package that is simply absent gets one short line with the install hint, not the resolver's
    // message with every path it tried; a package that is there but fails to load keeps its first line.
    // Node says so with a code; bundlers' resolvers (vite in tests) only in words.
    const absent =
      code === 'ERR_MODULE_NOT_FOUND' ||
      code === 'MODULE_NOT_FOUND' ||
      /Cannot find (package|module)|Could not resolve|Failed to resolve/.test(message);
    const reason = absent
      ? `not installed (npm i ${source.specifier})`
      : `failed to load: ${message.split('\n')[0]}`;
    throw new MoerlError('BACKEND_UNAVAILABLE', `${source.specifier} ${reason}`, {
      cause: error,
      details: { backend: name, specifier: source.specifier },
    });
  }
  let ok = false;
  try {
    ok = await tf.setBackend(source.tfName);
    await tf.ready();
  } catch (error) {
    throw new MoerlError(
      'BACKEND_UNAVAILABLE',
      `${name} failed to initialise (${(error as Error).message})`,
      {
        cause: error,
        details: { backend: name },
      },
    );
  }
  if (!ok || tf.getBackend() !== source.tfName) {
    throw new MoerlError(
      'BACKEND_UNAVAILABLE',
      `${name}: tf.setBackend('${source.tfName}') did not succeed`,
      {
        details: { backend: name },
      },
    );
  }
  if (name === 'tfjs-wasm') registerWasmBatchMatMul();
  active = name;
}

/**
 * Picks the first backend that loads, in `candidates` order (default: node-gpu, node, wasm, cpu), and
 * says which one it got and why the better ones were skipped.
 */
export async function selectTfjsBackend(
  candidates: readonly TfjsBackendName[] = TFJS_BACKEND_ORDER,
): Promise<TfjsBackendSelection> {
  const skipped: Array<{ name: TfjsBackendName; reason: string }> = [];
  for (const name of candidates) {
    try {
      await activateTfjsBackend(name);
      const why = skipped.map((skip) => `${skip.name}: ${skip.reason}`).join('; ');
      return { name, skipped, summary: `tfjs backend: ${name}${why ? ` (skipped ${why})` : ''}` };
    } catch (error) {
      skipped.push({ name, reason: (error as Error).message.split('\n')[0] ?? String(error) });
    }
  }
  throw new MoerlError(
    'BACKEND_UNAVAILABLE',
    `No tfjs backend could be initialised:\n${skipped.map((skip) => `  [${skip.name}] ${skip.reason}`).join('\n')}`,
    { details: { skipped } },
  );
}

/** The backend this package last activated, if any. */
export function activeTfjsBackend(): TfjsBackendName | undefined {
  return active;
}
