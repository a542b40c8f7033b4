import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  type GenerateRequest,
  MoerlError,
  type NamedTensors,
  type RolloutEngine,
  type RolloutEngineStats,
  type SamplingParams,
  type Trajectory,
} from '@moerl/core';
import { deserializeError } from './serialized-error.js';
import type { WorkerEngineReply, WorkerEngineRequest, WorkerEngineSpec } from './worker-engine-messages.js';

type Request = WorkerEngineRequest extends infer R
  ? R extends { id: number }
    ? Omit<R, 'id'>
    : never
  : never;

/*
 * From dist the worker is plain JavaScript. From the sources (tests, `--conditions=@moerl/source`) it is a .ts
 * file: a small module registers tsx in the worker first, since worker threads do not take `--import`.
 */
function startWorker(): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = new URL(`./rollout-engine-worker.${fromSource ? 'ts' : 'js'}`, import.meta.url);
  if (!fromSource) return new Worker(entry);
  const tsx = tsxEsmApi();
  const loader = `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(entry.href)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(loader)}`), {
    execArgv: ['--conditions=@moerl/source'],
  });
}

/** tsx's ESM API module (its package exports, read directly: test runners lack `import.meta.resolve`). */
function tsxEsmApi(): string {
  const manifest = createRequire(import.meta.url).resolve('tsx/package.json');
  const { exports } = JSON.parse(readFileSync(manifest, 'utf8')) as {
    exports: Record<string, { import: { default: string } }>;
  };
  return new URL(exports['./esm/api']!.import.default, pathToFileURL(manifest)).href;
}

/**
 * A rollout engine that runs in a worker thread: the backend `spec.backend` builds it there from
 * `spec.options`, and every call crosses as a structured clone (typed arrays copied, NaNs kept). With
 * `rollout.async` the engine's decode loop then runs beside training, where an in-process engine shares the
 * trainer's JavaScript thread and waits for it. Calls are answered in the order they were made; errors keep
 * their MoerlError code; a worker that dies fails every pending call and every later one.
 */
export async function createWorkerRolloutEngine(spec: WorkerEngineSpec): Promise<RolloutEngine> {
  const worker = startWorker();
  const pending = new Map<
    number,
    { resolve: (reply: WorkerEngineReply) => void; reject: (error: Error) => void }
  >();
  let nextId = 0;
  let dead: Error | undefined;
  const fail = (error: Error) => {
    dead ??= error;
    for (const { reject } of pending.values()) reject(dead);
    pending.clear();
  };
  worker.on('message', (reply: WorkerEngineReply) => {
    const waiting = pending.get(reply.id);
    if (waiting === undefined) return;
    pending.delete(reply.id);
    if (reply.type !== 'error') return waiting.resolve(reply);
    waiting.reject(deserializeError(reply));
  });
  worker.on('error', (error) =>
    fail(new MoerlError('BACKEND_UNAVAILABLE', `rollout worker failed: ${error.message}`, { cause: error })),
  );
  worker.on('exit', (code) =>
    fail(new MoerlError('BACKEND_UNAVAILABLE', `rollout worker exited (code ${code})`)),
  );
  const call = (request: Request): Promise<WorkerEngineReply> => {
    if (dead !== undefined) return Promise.reject(dead);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ ...request, id } as WorkerEngineRequest);
    });
  };

  let created: Extract<WorkerEngineReply, { type: 'created' }>;
  try {
    created = (await call({ type: 'create', spec })) as typeof created;
  } catch (error) {
    await worker.terminate();
    throw error;
  }
  let stats: RolloutEngineStats = created.stats;
  let disposed = false;
  return {
    specificationVersion: 'v1',
    backendName: created.backendName,
    capabilities: created.capabilities,
    config: created.config,
    async generate(
      requests: readonly GenerateRequest[],
      samplingParams: SamplingParams,
    ): Promise<Trajectory[]> {
      const reply = (await call({ type: 'generate', requests, samplingParams })) as Extract<
        WorkerEngineReply,
        { type: 'generated' }
      >;
      stats = reply.stats;
      return reply.trajectories;
    },
    async updateWeights(weights: NamedTensors, version: number): Promise<void> {
      const reply = (await call({ type: 'updateWeights', weights, version })) as Extract<
        WorkerEngineReply,
        { type: 'done' }
      >;
      if (reply.stats !== undefined) stats = reply.stats;
    },
    stats: () => stats,
    async dispose(): Promise<void> {
      if (disposed) return;
      disposed = true;
      try {
        if (dead === undefined) await call({ type: 'dispose' });
      } finally {
        dead ??= new MoerlError('INVALID_ARGUMENT', 'rollout worker engine used after dispose');
        await worker.terminate();
      }
    },
  };
}
