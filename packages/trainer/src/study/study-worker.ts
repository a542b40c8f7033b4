/*
 * A child process of a parallel study (`stabilityStudy` with `jobs` > 1): runs the study runs it is sent,
 * one after the other, so the runs of one seed share their warm start (cached per process), and reports
 * progress events and results to the parent over IPC. Ctrl-C reaches the whole process group: like the
 * CLI's own runs, the child then stops after its current step and checkpoint.
 */
import type { RunEvents } from '../run/run-events.js';
import { serializeError } from '../run/serialized-error.js';
import { trainRun } from '../run/train-run.js';
import type { WorkerReply, WorkerRequest } from './worker-messages.js';

const controller = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => controller.abort());

const send = (reply: WorkerReply) =>
  new Promise<void>((resolve, reject) =>
    process.send?.(reply, undefined, {}, (error) => (error ? reject(error) : resolve())),
  );

function forward(name: string): RunEvents {
  const event =
    (kind: 'log' | 'warmStart' | 'phase' | 'step') =>
    (...args: unknown[]) => {
      void send({ type: 'event', name, kind, args });
    };
  return { log: event('log'), warmStart: event('warmStart'), phase: event('phase'), step: event('step') };
}

async function runAll(request: Extract<WorkerRequest, { type: 'runs' }>): Promise<void> {
  try {
    for (const run of request.runs) {
      if (controller.signal.aborted) break;
      const start = performance.now();
      const result = await trainRun({
        config: run.config,
        directory: run.directory,
        force: request.force,
        events: forward(run.config.name),
        signal: controller.signal,
      });
      await send({
        type: 'result',
        name: run.config.name,
        metrics: result.metrics,
        initialEvalAccuracy: result.initialEvalAccuracy,
        initialSeenEvalAccuracy: result.initialSeenEvalAccuracy,
        wallSeconds: (performance.now() - start) / 1000,
      });
    }
    await send({ type: 'done' });
  } catch (error) {
    await send({ type: 'error', ...serializeError(error) });
  }
  process.disconnect();
}

process.on('message', (message: WorkerRequest) => {
  if (message.type === 'abort') controller.abort();
  else void runAll(message);
});
