import { readFile } from 'node:fs/promises';
import { MoerlError } from '@moerl/core';
import { validateRunConfig } from '../config/resolve-run-config.js';
import { taskOf } from '../tasks/run-task.js';
import { createEvalSet } from '../tasks/task-registry.js';
import { resolveRunBackends } from './backends.js';
import { evaluateAccuracy } from './evaluate.js';
import { initialWeights, maxNewTokensOf, modelConfigOf } from './model-setup.js';
import { importPlugins } from './preflight.js';
import { assertRunDirectory, readLatestCheckpoint, runPaths } from './run-directory.js';

export interface EvaluateRunResult {
  readonly step: number;
  readonly accuracy: number;
  readonly problems: number;
}

/** Greedy held-out accuracy of a run's latest checkpoint (the same evaluation set the run used). */
export async function evaluateRun(
  directory: string,
  options: { readonly size?: number } = {},
): Promise<EvaluateRunResult> {
  const paths = runPaths(directory);
  await assertRunDirectory(paths, 'eval');
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(paths.config, 'utf8'));
  } catch (error) {
    throw new MoerlError(
      'CONFIG_INVALID',
      `${paths.config}: cannot read the run's config (${(error as Error).message})`,
      {
        cause: error,
        details: { path: paths.config },
      },
    );
  }
  const config = validateRunConfig(raw, paths.config);
  await importPlugins(config.plugins);
  const task = await taskOf(config);
  const modelConfig = await modelConfigOf(config, task);
  const { state, trainerDirectory } = await readLatestCheckpoint(paths);
  const backends = await resolveRunBackends(config.backends);
  const trainer = await backends.createTrainer({
    config: modelConfig,
    weights: await initialWeights(config, modelConfig),
    seed: config.seed,
  });
  try {
    await trainer.loadCheckpoint(trainerDirectory);
    const engine = await backends.createEngine({
      config: modelConfig,
      weights: await trainer.exportWeights(),
      weightVersion: state.weightVersion,
      precision: config.rollout.precision,
      fp8: config.rollout.fp8,
      // The engine the run sampled with, activations included.
      ...(config.rollout.activations === 'fp32'
        ? {}
        : { backendOptions: { activations: config.rollout.activations } }),
    });
    try {
      const examples = createEvalSet(task, options.size ?? config.eval.size, config.seed);
      const accuracy = await evaluateAccuracy(engine, task, examples, maxNewTokensOf(config, task));
      return { step: state.step, accuracy, problems: examples.length };
    } finally {
      await engine.dispose();
    }
  } finally {
    await trainer.dispose();
  }
}
