import { mkdir, readdir, rm } from 'node:fs/promises';
import { basename } from 'node:path';
import { listObjectives } from '@moerl/algos';
import { type ModelConfig, MoerlError } from '@moerl/core';
import type { RunConfig } from '../config/run-config-schema.js';
import { taskOf } from '../tasks/run-task.js';
import type { Task } from '../tasks/task.js';
import { assertRunFits, estimateRunMemory, type MemoryEstimate } from './memory-estimate.js';
import { modelConfigOf } from './model-setup.js';
import { type RunPaths, removeStaleTemporaries } from './run-directory.js';

export async function importPlugins(plugins: readonly string[]): Promise<void> {
  for (const plugin of plugins) {
    try {
      await import(plugin);
    } catch (error) {
      throw new MoerlError(
        'CONFIG_INVALID',
        `plugins: cannot import "${plugin}": ${(error as Error).message}`,
        {
          cause: error,
          details: { field: 'plugins', found: plugin },
        },
      );
    }
  }
}

/**
 * Checks of a run config that the schema cannot make alone: sizes that depend on each other. Each problem
 * is a `CONFIG_INVALID` naming the field, what was expected and what was found.
 */
export function runConfigProblems(config: RunConfig): string[] {
  const problems: string[] = [];
  const { promptsPerStep, groupSize } = config.rollout;
  if (groupSize < 2) {
    // Every estimator compares a response with the others of its prompt: alone in its group, its
    // advantage is 0 (grpo, dr-grpo, reinforce++) or undefined (rloo), and RL never moves the policy.
    problems.push(
      `rollout.groupSize: advantage "${config.algorithm.advantage}" is group-normalised and needs at least 2 samples per prompt, found ${groupSize} (every advantage would be 0)`,
    );
  }
  const batch = promptsPerStep * groupSize;
  if (config.train.miniBatches > batch) {
    problems.push(
      `train.miniBatches: at most the ${batch} responses of a step (rollout.promptsPerStep × rollout.groupSize = ${promptsPerStep} × ${groupSize}), found ${config.train.miniBatches}`,
    );
  }
  return problems;
}

export interface RunPreflight {
  readonly task: Task;
  readonly modelConfig: ModelConfig;
  readonly memory: MemoryEstimate;
}

/**
 * Everything about a run config that can be checked without training: plugins import, the task and the
 * objective are registered, the model's fields agree with each other and the batch sizes fit. Run it
 * before touching the run directory, so a typo costs nothing.
 */
export async function preflightRun(config: RunConfig): Promise<RunPreflight> {
  await importPlugins(config.plugins);
  const task = await taskOf(config);
  let modelConfig: ModelConfig;
  try {
    modelConfig = await modelConfigOf(config, task);
  } catch (error) {
    if (!MoerlError.isInstance(error)) throw error;
    // The model's own checks name ModelConfig fields; those the run config sets are `model.<field>`.
    const fields = Object.keys(config.model);
    const problems = (
      Array.isArray(error.details.problems) ? (error.details.problems as string[]) : [error.message]
    ).map((problem) =>
      fields.some((field) => problem.startsWith(`${field} `)) ? `model.${problem}` : problem,
    );
    throw new MoerlError('CONFIG_INVALID', `Invalid config:\n  - ${problems.join('\n  - ')}`, {
      cause: error,
      details: { problems },
    });
  }
  const objectives = listObjectives();
  if (!objectives.includes(config.algorithm.objective)) {
    throw new MoerlError(
      'CONFIG_INVALID',
      `algorithm.objective: expected a registered objective (${objectives.join(', ')}${config.plugins.length === 0 ? '; a plugin’s objective needs its module in plugins' : ''}), found "${config.algorithm.objective}"`,
      {
        details: { field: 'algorithm.objective', found: config.algorithm.objective, allowed: objectives },
      },
    );
  }
  const problems = runConfigProblems(config);
  if (problems.length > 0) {
    throw new MoerlError('CONFIG_INVALID', `Invalid config:\n  - ${problems.join('\n  - ')}`, {
      details: { problems },
    });
  }
  const memory = estimateRunMemory(config, modelConfig, task);
  assertRunFits(memory);
  return { task, modelConfig, memory };
}

/** The files of a run in its directory; another run must not write over them unasked. */
function runArtifacts(paths: RunPaths): string[] {
  return [
    paths.config,
    paths.metrics,
    paths.checkpoints,
    paths.initialEval,
    paths.reference,
    paths.rolloutWeights,
    paths.report,
  ];
}

/**
 * Makes the run directory ready: a new run refuses a directory that already holds a run
 * (`INVALID_ARGUMENT`), unless it resumes it or `force` says to replace it (then the old run's files are
 * removed first, so the two never mix). Temporaries of crashed saves are removed, and the directory is
 * created; a path that cannot be a directory is an `IO_ERROR` naming it.
 */
export async function prepareRunDirectory(
  paths: RunPaths,
  options: { readonly resume?: boolean; readonly force?: boolean },
): Promise<void> {
  let entries: string[] = [];
  try {
    entries = await readdir(paths.root);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw notADirectory(paths.root, error);
  }
  const existing = runArtifacts(paths).filter((path) => entries.includes(basename(path)));
  if (options.resume !== true && existing.length > 0) {
    if (options.force !== true) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `run directory ${paths.root} already holds a run (${existing.map((path) => basename(path)).join(', ')}); continue it with --resume, replace it with --force, or choose another --out`,
        { details: { path: paths.root, found: existing } },
      );
    }
    for (const path of existing) await rm(path, { recursive: true, force: true });
  }
  await removeStaleTemporaries(paths);
  try {
    await mkdir(paths.root, { recursive: true });
  } catch (error) {
    throw notADirectory(paths.root, error);
  }
}

function notADirectory(path: string, error: unknown): MoerlError {
  const code = (error as NodeJS.ErrnoException).code;
  const found =
    code === 'ENOTDIR' || code === 'EEXIST'
      ? 'it or a folder above it is a regular file'
      : `cannot use it (${(error as Error).message})`;
  return new MoerlError('IO_ERROR', `run directory ${path}: expected a directory, ${found}`, {
    cause: error,
    details: { path },
  });
}
