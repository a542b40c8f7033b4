import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MoerlError, writeFileAtomic } from '@moerl/core';
import type { RunConfig } from '../config/run-config-schema.js';
import type { StepMetrics } from '../metrics/step-metrics.js';
import { readJsonLines, writeJsonLines } from './json-lines.js';

/** Where a run keeps its files: config.json, metrics.jsonl, checkpoints/, report.html. */
export interface RunPaths {
  readonly root: string;
  readonly config: string;
  readonly metrics: string;
  /** Some rollouts of every step as text (`log.samples`). */
  readonly samples: string;
  readonly checkpoints: string;
  readonly latest: string;
  readonly report: string;
  readonly initialEval: string;
  /** Weights of the warm-started policy, kept when the objective has a KL term against it. */
  readonly reference: string;
  /** Checkpoints the rollout servers load the policy from (`rollout.servers`), one `v<step>` folder. */
  readonly rolloutWeights: string;
}

export function runPaths(root: string): RunPaths {
  const checkpoints = join(root, 'checkpoints');
  return {
    root,
    config: join(root, 'config.json'),
    metrics: join(root, 'metrics.jsonl'),
    samples: join(root, 'samples.jsonl'),
    checkpoints,
    latest: join(checkpoints, 'latest.json'),
    report: join(root, 'report.html'),
    initialEval: join(root, 'eval-before-rl.json'),
    reference: join(root, 'reference.safetensors'),
    rolloutWeights: join(root, 'rollout-weights'),
  };
}

/**
 * Refuses, with `INVALID_ARGUMENT` naming the path and what is there, a path that is not a run directory:
 * missing, not a directory, or without the run's `config.json`. `command` prefixes the message.
 */
export async function assertRunDirectory(paths: RunPaths, command: string): Promise<void> {
  const info = await stat(paths.root).catch(() => undefined);
  const problem =
    info === undefined
      ? 'does not exist'
      : !info.isDirectory()
        ? 'is a file, not a run directory'
        : await readdir(paths.root).then((entries) =>
            entries.includes('config.json')
              ? undefined
              : `is not a run directory (expected the config.json a run writes, found ${entries.length === 0 ? 'an empty directory' : entries.slice(0, 8).join(', ')}${entries.length > 8 ? ', …' : ''})`,
          );
  if (problem !== undefined) {
    throw new MoerlError('INVALID_ARGUMENT', `${command}: ${paths.root} ${problem}`, {
      details: { path: paths.root },
    });
  }
}

/** NaN and ±Infinity are not JSON: they are written as null and read back as NaN. */
const encodeNumber = (_key: string, value: unknown) =>
  typeof value === 'number' && !Number.isFinite(value) ? null : value;

export async function writeMetrics(paths: RunPaths, rows: readonly StepMetrics[]): Promise<void> {
  await writeJsonLines(paths.metrics, rows, encodeNumber);
}

export async function readMetrics(path: string): Promise<StepMetrics[]> {
  return readJsonLines<StepMetrics>(path, (_key, value) => (value === null ? Number.NaN : value));
}

/** Held-out accuracy of the policy RL starts from, kept beside the metrics (they start at step 1). */
export async function writeInitialEval(
  paths: RunPaths,
  accuracy: number,
  seenAccuracy = Number.NaN,
): Promise<void> {
  await writeFileAtomic(
    paths.initialEval,
    `${JSON.stringify({ evalAccuracy: accuracy, seenEvalAccuracy: seenAccuracy }, encodeNumber)}\n`,
  );
}

/** Held-out accuracy, and accuracy on warm-start problems, of the policy RL starts from (NaN when unknown). */
export async function readInitialEvals(
  paths: RunPaths,
): Promise<{ readonly evalAccuracy: number; readonly seenEvalAccuracy: number }> {
  try {
    const { evalAccuracy, seenEvalAccuracy } = JSON.parse(await readFile(paths.initialEval, 'utf8')) as {
      evalAccuracy?: number | null;
      seenEvalAccuracy?: number | null;
    };
    return { evalAccuracy: evalAccuracy ?? Number.NaN, seenEvalAccuracy: seenEvalAccuracy ?? Number.NaN };
  } catch {
    return { evalAccuracy: Number.NaN, seenEvalAccuracy: Number.NaN };
  }
}

export async function writeRunConfig(paths: RunPaths, config: RunConfig): Promise<void> {
  await mkdir(paths.root, { recursive: true });
  await writeFileAtomic(paths.config, `${JSON.stringify(config, null, 2)}\n`);
}

/** What a checkpoint needs besides the trainer's own files to continue a run identically. */
export interface RunState {
  readonly step: number;
  /** Rows of metrics.jsonl that belong to steps ≤ `step`. */
  readonly metricsRows: number;
  readonly weightVersion: number;
  readonly skippedSteps: number;
}

export interface LatestCheckpoint {
  readonly step: number;
  readonly directory: string;
}

/**
 * Writes a checkpoint atomically: everything goes to a temporary directory that is renamed into place,
 * then `latest.json` is replaced. A crash at any point leaves the previous checkpoint intact.
 */
export async function saveRunCheckpoint(
  paths: RunPaths,
  state: RunState,
  saveTrainer: (directory: string) => Promise<void>,
  /** Writes what else a resume needs into the checkpoint directory (before it is renamed into place). */
  saveExtra?: (directory: string) => Promise<void>,
): Promise<string> {
  await mkdir(paths.checkpoints, { recursive: true });
  const name = `step-${String(state.step).padStart(6, '0')}`;
  const temporary = join(paths.checkpoints, `.${name}.${process.pid}.tmp`);
  const final = join(paths.checkpoints, name);
  await rm(temporary, { recursive: true, force: true });
  await mkdir(temporary, { recursive: true });
  await saveTrainer(join(temporary, 'trainer'));
  await saveExtra?.(temporary);
  await writeFileAtomic(join(temporary, 'run-state.json'), `${JSON.stringify(state, null, 2)}\n`);
  await rm(final, { recursive: true, force: true });
  await rename(temporary, final);
  await writeFileAtomic(
    paths.latest,
    `${JSON.stringify({ step: state.step, directory: name } satisfies LatestCheckpoint)}\n`,
  );
  // Older checkpoints go only after the new one is in place.
  for (const entry of await readdir(paths.checkpoints)) {
    if (entry.startsWith('step-') && entry !== name)
      await rm(join(paths.checkpoints, entry), { recursive: true, force: true });
  }
  return final;
}

/** `.step-000004.1234.tmp` (a checkpoint being written) or `.metrics.jsonl.1234.9f3a….tmp` (a file). */
const TEMPORARY = /^\..+\.(\d+)(?:\.[0-9a-f]+)?\.tmp$/;

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporaries that processes which no longer run left in the run directory and its
 * checkpoints (a crash or kill mid-save); those of live processes are theirs. Returns the removed paths.
 */
export async function removeStaleTemporaries(paths: RunPaths): Promise<string[]> {
  const removed: string[] = [];
  for (const directory of [paths.root, paths.checkpoints]) {
    let entries: string[];
    try {
      entries = await readdir(directory);
    } catch {
      continue;
    }
    for (const entry of entries) {
      const pid = TEMPORARY.exec(entry)?.[1];
      if (pid === undefined || processAlive(Number(pid))) continue;
      await rm(join(directory, entry), { recursive: true, force: true });
      removed.push(join(directory, entry));
    }
  }
  return removed;
}

export async function readLatestCheckpoint(
  paths: RunPaths,
): Promise<{ state: RunState; trainerDirectory: string; directory: string }> {
  let latest: LatestCheckpoint;
  try {
    latest = JSON.parse(await readFile(paths.latest, 'utf8')) as LatestCheckpoint;
  } catch (error) {
    throw new MoerlError(
      'CHECKPOINT_INVALID',
      `No readable checkpoint in ${paths.checkpoints} (${(error as Error).message})`,
      {
        cause: error,
        details: { path: paths.latest },
      },
    );
  }
  const directory = join(paths.checkpoints, latest.directory);
  let state: RunState;
  try {
    state = JSON.parse(await readFile(join(directory, 'run-state.json'), 'utf8')) as RunState;
  } catch (error) {
    throw new MoerlError('CHECKPOINT_INVALID', `Checkpoint ${directory} has no readable run-state.json`, {
      cause: error,
      details: { path: directory },
    });
  }
  if (!Number.isInteger(state.step) || !Number.isInteger(state.metricsRows) || state.step !== latest.step) {
    throw new MoerlError(
      'CHECKPOINT_INVALID',
      `Checkpoint ${directory}: run-state.json does not match latest.json`,
      {
        details: { path: directory, state, latest },
      },
    );
  }
  return { state, trainerDirectory: join(directory, 'trainer'), directory };
}
