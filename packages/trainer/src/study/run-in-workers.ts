import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MoerlError } from '@moerl/core';
import type { RunConfig } from '../config/run-config-schema.js';
import type { RunEvents } from '../run/run-events.js';
import { deserializeError } from '../run/serialized-error.js';
import type { WorkerReply, WorkerRequest } from './worker-messages.js';

export interface PlannedRun {
  readonly config: RunConfig;
  readonly directory: string;
}

export type WorkerRunResult = Omit<Extract<WorkerReply, { type: 'result' }>, 'type'>;

export interface RunInWorkersOptions {
  /** Child processes at a time (each runs one group after another). */
  readonly jobs: number;
  readonly force: boolean;
  readonly eventsFor?: (name: string) => RunEvents & { stop?(): void };
  readonly signal?: AbortSignal;
}

/*
 * From the sources (tests, `--conditions=@moerl/source`) the worker is a .ts file that the child loads
 * through tsx; from dist it is plain JavaScript.
 */
function workerEntry(): { path: string; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  const path = fileURLToPath(new URL(`./study-worker.${fromSource ? 'ts' : 'js'}`, import.meta.url));
  return { path, execArgv: fromSource ? ['--conditions=@moerl/source', '--import', 'tsx'] : [] };
}

/**
 * Runs each group of runs in its own child process, at most `jobs` processes at a time, so a study uses every
 * core (a tfjs-wasm trainer uses one). Runs inside a group go one after another in one process: give a group
 * the runs of one seed and they share its warm start. Resolves with every run's result by run name; rejects
 * with the first run's error, after stopping the other processes.
 */
export async function runInWorkers(
  groups: readonly (readonly PlannedRun[])[],
  options: RunInWorkersOptions,
): Promise<Map<string, WorkerRunResult>> {
  const results = new Map<string, WorkerRunResult>();
  const { path, execArgv } = workerEntry();
  const live = new Set<ReturnType<typeof fork>>();
  const abort = () => {
    for (const child of live) if (child.connected) child.send({ type: 'abort' } satisfies WorkerRequest);
  };
  options.signal?.addEventListener('abort', abort);
  let failure: Error | undefined;

  const runGroup = (group: readonly PlannedRun[]) =>
    new Promise<void>((resolve, reject) => {
      // Structured clone, not JSON: metrics keep their NaNs.
      const child = fork(path, [], {
        execArgv,
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      live.add(child);
      const events = new Map<string, RunEvents & { stop?(): void }>();
      const eventsOf = (name: string) => {
        let forRun = events.get(name);
        if (forRun === undefined && options.eventsFor !== undefined) {
          forRun = options.eventsFor(name);
          events.set(name, forRun);
        }
        return forRun;
      };
      let settled = false;
      const finish = (error?: Error) => {
        if (settled) return;
        settled = true;
        live.delete(child);
        for (const forRun of events.values()) forRun.stop?.();
        if (error === undefined) resolve();
        else reject(error);
      };
      child.on('message', (reply: WorkerReply) => {
        if (reply.type === 'event') {
          const handler = eventsOf(reply.name)?.[reply.kind] as ((...args: unknown[]) => void) | undefined;
          handler?.(...reply.args);
        } else if (reply.type === 'result') {
          const { type: _, ...result } = reply;
          results.set(reply.name, result);
          events.get(reply.name)?.stop?.();
          events.delete(reply.name);
        } else if (reply.type === 'done') {
          finish();
        } else {
          finish(deserializeError(reply));
        }
      });
      child.on('error', (error) => finish(error));
      child.on('close', (code, signal) =>
        finish(
          new MoerlError(
            'IO_ERROR',
            `The study process for ${group.map((run) => run.config.name).join(', ')} exited (${signal ?? `code ${code}`}) before it finished`,
            { details: { code, signal } },
          ),
        ),
      );
      child.send({ type: 'runs', runs: group, force: options.force } satisfies WorkerRequest);
      if (options.signal?.aborted === true) child.send({ type: 'abort' } satisfies WorkerRequest);
    });

  const queue = [...groups];
  const lane = async () => {
    for (let group = queue.shift(); group !== undefined; group = queue.shift()) {
      if (failure !== undefined || options.signal?.aborted === true) return;
      try {
        await runGroup(group);
      } catch (error) {
        failure ??= error as Error;
        abort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(options.jobs, groups.length)) }, lane));
  } finally {
    options.signal?.removeEventListener('abort', abort);
  }
  if (failure !== undefined) throw failure;
  return results;
}
