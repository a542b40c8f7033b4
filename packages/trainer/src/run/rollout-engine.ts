import type { CreateEngineOptions, ModelConfig, NamedTensors, RolloutEngine } from '@moerl/core';
import { checkpointWeightSync, createHttpRolloutEngine } from '@moerl/rollout-http';
import type { RunConfig } from '../config/run-config-schema.js';
import type { ResolvedRunBackends } from './backends.js';
import type { RunPaths } from './run-directory.js';
import { createWorkerRolloutEngine } from './worker-rollout-engine.js';

export interface RunEngineOptions {
  readonly config: RunConfig;
  readonly modelConfig: ModelConfig;
  readonly backends: ResolvedRunBackends;
  readonly paths: RunPaths;
  /** The policy rollouts start from, and the version it carries. */
  readonly weights: NamedTensors;
  readonly weightVersion: number;
  readonly log?: (line: string) => void;
}

/**
 * The run's rollout engine: the resolved in-process backend, or, with `rollout.servers`, the HTTP engine over
 * those servers; either in a worker thread with `rollout.worker`. Servers get each policy as a checkpoint under
 * `<run>/rollout-weights` (they must see the trainer's filesystem) and load it through
 * `/update_weights_from_disk`, starting with the initial one, so whatever they served before, every rollout
 * comes from this run's policy.
 */
export async function createRunEngine(options: RunEngineOptions): Promise<RolloutEngine> {
  const { config, modelConfig, weights, weightVersion } = options;
  const { servers, protocol, compactRouting } = config.rollout;
  if (servers.length === 0) {
    const engineOptions: CreateEngineOptions = {
      config: modelConfig,
      weights,
      weightVersion,
      precision: config.rollout.precision,
      fp8: config.rollout.fp8,
      backendOptions: {
        prefixCache: config.rollout.prefixCache,
        // Only when asked for, so a backend that does not know the key sees the options it always saw.
        ...(config.rollout.activations === 'fp32' ? {} : { activations: config.rollout.activations }),
        ...(config.rollout.threads === undefined ? {} : { intraOpNumThreads: config.rollout.threads }),
      },
    };
    if (!config.rollout.worker) return options.backends.createEngine(engineOptions);
    return createWorkerRolloutEngine({
      kind: 'backend',
      backend: options.backends.engineName,
      plugins: config.plugins,
      options: engineOptions,
    });
  }
  const httpOptions = {
    servers,
    config: modelConfig,
    protocol,
    compactRouting,
    prefixReuse: config.rollout.prefixCache,
    weightVersion,
  };
  const weightDirectory = options.paths.rolloutWeights;
  const engine = config.rollout.worker
    ? await createWorkerRolloutEngine({ kind: 'http', options: httpOptions, weightDirectory })
    : createHttpRolloutEngine({
        ...httpOptions,
        weightSync: checkpointWeightSync({ directory: weightDirectory, config: modelConfig }),
      });
  try {
    await engine.updateWeights(weights, weightVersion);
  } catch (error) {
    await engine.dispose();
    throw error;
  }
  options.log?.(
    `rollout: ${servers.length} ${protocol} server(s): ${servers.join(', ')} (they compute in their own precision; rollout.precision applies to in-process engines)`,
  );
  return engine;
}
