/*
 * The worker thread of `createWorkerRolloutEngine`: builds the rollout engine the main thread asked for (a
 * registered backend, or the HTTP engine over rollout servers, whose JSON and routing decoding then leave the
 * trainer's thread too) and
 * answers its calls one at a time, in the order they were sent, so a weight update never lands in the middle
 * of a batch. The engine's own JavaScript (sampling, the decode loop) then runs beside the trainer's thread
 * instead of waiting for it.
 */
import { parentPort } from 'node:worker_threads';
import { MoerlError, type RolloutEngine, resolveBackend } from '@moerl/core';
import { checkpointWeightSync, createHttpRolloutEngine } from '@moerl/rollout-http';
import { registerDefaultBackends } from './backends.js';
import { importPlugins } from './preflight.js';
import { serializeError } from './serialized-error.js';
import type { WorkerEngineReply, WorkerEngineRequest, WorkerEngineSpec } from './worker-engine-messages.js';

const port = parentPort;
if (port === null) throw new Error('rollout-engine-worker runs as a worker thread only');

let engine: RolloutEngine | undefined;

async function createEngine(spec: WorkerEngineSpec): Promise<RolloutEngine> {
  if (spec.kind === 'http') {
    const { options, weightDirectory } = spec;
    return createHttpRolloutEngine({
      ...options,
      weightSync: checkpointWeightSync({ directory: weightDirectory, config: options.config }),
    });
  }
  registerDefaultBackends();
  await importPlugins(spec.plugins);
  const resolved = await resolveBackend('rollout', { preferred: spec.backend });
  return resolved.backend.createEngine(spec.options);
}

async function answer(request: WorkerEngineRequest): Promise<WorkerEngineReply> {
  const { id } = request;
  if (request.type === 'create') {
    engine = await createEngine(request.spec);
    return {
      type: 'created',
      id,
      backendName: engine.backendName,
      capabilities: engine.capabilities,
      config: engine.config,
      stats: engine.stats(),
    };
  }
  if (engine === undefined) {
    throw new MoerlError('INVALID_ARGUMENT', `rollout worker: ${request.type} before the engine was created`);
  }
  switch (request.type) {
    case 'generate': {
      const trajectories = await engine.generate(request.requests, request.samplingParams);
      return { type: 'generated', id, trajectories, stats: engine.stats() };
    }
    case 'updateWeights':
      await engine.updateWeights(request.weights, request.version);
      return { type: 'done', id, stats: engine.stats() };
    case 'dispose':
      await engine.dispose();
      engine = undefined;
      return { type: 'done', id };
  }
}

let queue: Promise<void> = Promise.resolve();
port.on('message', (request: WorkerEngineRequest) => {
  queue = queue.then(async () => {
    let reply: WorkerEngineReply;
    try {
      reply = await answer(request);
    } catch (error) {
      reply = { type: 'error', id: request.id, ...serializeError(error) };
    }
    port.postMessage(reply);
  });
});
