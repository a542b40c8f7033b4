import { MoerlError, type NamedTensors, type RolloutEngine } from '@moerl/core';
import { createRandomWeights, createReferenceRolloutEngine } from '@moerl/testkit';
import { describe, expect, it } from 'vitest';
import { tinyRun } from '../__fixtures__/tiny-run.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { createTask } from '../tasks/task-registry.js';
import { modelConfigFor, samplingParamsFor } from './model-setup.js';
import { RolloutPipeline } from './rollout-pipeline.js';
import type { StepContext } from './step-pipeline.js';

/**
 * The reference engine behind a queue that runs calls one at a time in the order they were made (as the
 * rollout worker does), with weight updates held until the test lets them finish.
 */
function orderedEngine(base: RolloutEngine, log: string[]) {
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(task: () => Promise<T>): Promise<T> => {
    const run = queue.then(task);
    queue = run.catch(() => undefined);
    return run;
  };
  let release: (failure?: Error) => void = () => {};
  const engine: RolloutEngine = {
    ...base,
    generate: (requests, sampling) => {
      log.push('generate asked');
      return serial(() => base.generate(requests, sampling));
    },
    updateWeights: (weights, version) => {
      log.push(`update ${version} asked`);
      const held = new Promise<void>((resolve, reject) => {
        release = (failure) => (failure === undefined ? resolve() : reject(failure));
      });
      return serial(async () => {
        await held;
        await base.updateWeights(weights, version);
        log.push(`update ${version} done`);
      });
    },
    stats: () => base.stats(),
  };
  return { engine, finishUpdate: (failure?: Error) => release(failure) };
}

async function setup(ordersCalls: boolean) {
  const config = await resolveRunConfig({ config: { ...tinyRun, train: { steps: 3, miniBatches: 1 } } });
  const task = createTask(config.task.name);
  const modelConfig = modelConfigFor(config, task);
  const weights = (seed: number): NamedTensors => createRandomWeights(modelConfig, seed);
  const log: string[] = [];
  const { engine, finishUpdate } = orderedEngine(
    createReferenceRolloutEngine({ config: modelConfig, weights: weights(1), weightVersion: 0 }),
    log,
  );
  // Sampling reads only these; training is not part of the pipeline.
  const context = {
    config,
    task,
    engine,
    sampling: samplingParamsFor(config, task),
    heldOut: new Set<string>(),
  } as unknown as StepContext;
  const pipeline = new RolloutPipeline(context, {
    ahead: 1,
    lastStep: 3,
    engineWeights: weights(1),
    updateInBackground: true,
    ordersCalls,
  });
  return { pipeline, log, finishUpdate, weights };
}

const versionsOf = (collected: Awaited<ReturnType<RolloutPipeline['take']>>['collected']) => [
  ...new Set(collected.rollouts.trajectories.map((trajectory) => trajectory.weightVersion)),
];
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

describe('RolloutPipeline, one step ahead with the update in the background', () => {
  it('ordersCalls: asks for the next batch before the update is done, and the engine samples it with the new weights', async () => {
    const { pipeline, log, finishUpdate, weights } = await setup(true);
    expect(versionsOf((await pipeline.take(1)).collected)).toEqual([0]);
    await pipeline.publish(weights(2), 1);
    const second = await pipeline.take(2);
    expect(versionsOf(second.collected)).toEqual([0]);
    await settle();
    // Asked while the update still runs: a busy trainer thread need not wake up to start sampling.
    expect(log.slice(-2)).toEqual(['update 1 asked', 'generate asked']);
    finishUpdate();
    expect(versionsOf((await pipeline.take(3)).collected)).toEqual([1]);
  });

  it('without ordersCalls: asks for the next batch only once the update is done', async () => {
    const { pipeline, log, finishUpdate, weights } = await setup(false);
    await pipeline.take(1);
    await pipeline.publish(weights(2), 1);
    await pipeline.take(2);
    await settle();
    expect(log.at(-1)).toBe('update 1 asked');
    finishUpdate();
    expect(versionsOf((await pipeline.take(3)).collected)).toEqual([1]);
    expect(log.slice(-2)).toEqual(['update 1 done', 'generate asked']);
  });

  it('ordersCalls: a failed update fails the batch asked for after it', async () => {
    const { pipeline, finishUpdate, weights } = await setup(true);
    await pipeline.take(1);
    await pipeline.publish(weights(2), 1);
    await pipeline.take(2);
    finishUpdate(new MoerlError('IO_ERROR', 'update to version 1 failed'));
    await expect(pipeline.take(3)).rejects.toThrow(/update to version 1 failed/);
    await pipeline.drain();
  });
});
