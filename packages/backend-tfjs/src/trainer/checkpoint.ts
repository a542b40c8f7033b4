import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  assertFiniteTensors,
  type ModelConfig,
  MoerlError,
  type NamedTensors,
  readHfConfigFile,
  readSafetensorsFile,
  validateWeights,
  writeFileAtomic,
  writeHfConfigFile,
  writeSafetensorsFile,
} from '@moerl/core';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
/**
 * The AdamW moments, in a subfolder: vLLM and SGLang load every `*.safetensors` of a model directory that
 * has no index file, so moments beside `model.safetensors` would be read as weights.
 */
export const OPTIMIZER_FILE = join('optimizer', 'optimizer.safetensors');
/** Where checkpoints written before the subfolder kept the moments; still read. */
const LEGACY_OPTIMIZER_FILE = 'optimizer.safetensors';
export const STATE_FILE = 'trainer-state.json';
const SAVE_ID_KEY = 'moerl_save_id';
const STATE_FORMAT = 'moerl-tfjs-trainer-v1';

/** What a resumed run needs besides weights and moments. */
export interface TrainerState {
  /** Optimizer updates applied so far (drives bias correction and the learning-rate schedule). */
  readonly step: number;
  readonly skippedSteps: number;
  /** The trainer's seed; the trainer draws no random numbers, so the seed is the whole RNG state. */
  readonly seed: number;
}

export interface CheckpointContents {
  readonly weights: NamedTensors;
  /** Absent for weights-only checkpoints (e.g. written by the reference trainer or another backend). */
  readonly optimizer?: NamedTensors;
  readonly state?: TrainerState;
}

/**
 * Writes `config.json`, `model.safetensors` (loadable by the reference, backend-onnx, vLLM and SGLang
 * unchanged: it is the directory's only `*.safetensors`), `optimizer/optimizer.safetensors` and
 * `trainer-state.json`. Each file is written atomically (temp file, fsync,
 * rename) and carries one random save id; the state file is written last and names that id, so a save torn
 * by a crash between files is detected on load (`CHECKPOINT_INVALID`) instead of mixing two saves.
 */
export async function writeCheckpoint(
  directory: string,
  config: ModelConfig,
  contents: Required<CheckpointContents>,
): Promise<void> {
  try {
    await mkdir(directory, { recursive: true });
  } catch (error) {
    throw new MoerlError('IO_ERROR', `Could not create ${directory}: ${(error as Error).message}`, {
      cause: error,
      details: { path: directory },
    });
  }
  const saveId = randomBytes(8).toString('hex');
  const metadata = { format: 'pt', [SAVE_ID_KEY]: saveId };
  await writeSafetensorsFile(join(directory, WEIGHTS_FILE), contents.weights, metadata);
  try {
    await mkdir(dirname(join(directory, OPTIMIZER_FILE)), { recursive: true });
  } catch (error) {
    throw new MoerlError(
      'IO_ERROR',
      `Could not create ${dirname(join(directory, OPTIMIZER_FILE))}: ${(error as Error).message}`,
      {
        cause: error,
        details: { path: dirname(join(directory, OPTIMIZER_FILE)) },
      },
    );
  }
  await writeSafetensorsFile(join(directory, OPTIMIZER_FILE), contents.optimizer, metadata);
  // A save over an old-layout checkpoint must not leave its moments where serving engines read weights.
  await rm(join(directory, LEGACY_OPTIMIZER_FILE), { force: true });
  await writeHfConfigFile(join(directory, CONFIG_FILE), config);
  const state = { format: STATE_FORMAT, saveId, ...contents.state };
  await writeFileAtomic(join(directory, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
}

function invalid(directory: string, reason: string, cause?: unknown): MoerlError {
  return new MoerlError('CHECKPOINT_INVALID', `Cannot load the checkpoint in ${directory}: ${reason}`, {
    ...(cause === undefined ? {} : { cause }),
    details: { directory },
  });
}

/** The fields on which two configs differ, as `field: checkpoint a, trainer b`. */
function configDifferences(trainer: ModelConfig, checkpoint: ModelConfig): string[] {
  const keys = new Set([...Object.keys(trainer), ...Object.keys(checkpoint)]) as Set<keyof ModelConfig>;
  const show = (value: unknown) => (Array.isArray(value) ? `[${value.join(', ')}]` : String(value));
  const differences: string[] = [];
  for (const key of keys) {
    if (show(trainer[key]) !== show(checkpoint[key])) {
      differences.push(`${key}: checkpoint ${show(checkpoint[key])}, trainer ${show(trainer[key])}`);
    }
  }
  return differences;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads a checkpoint for a trainer of `config`: `CHECKPOINT_INVALID` when files are missing or unreadable,
 * the config differs, or the files come from different saves.
 */
export async function readCheckpoint(directory: string, config: ModelConfig): Promise<CheckpointContents> {
  let saved: ModelConfig;
  try {
    saved = await readHfConfigFile(join(directory, CONFIG_FILE));
  } catch (error) {
    throw invalid(directory, (error as Error).message, error);
  }
  const differences = configDifferences(config, saved);
  if (differences.length > 0) {
    throw invalid(directory, `it is for another model:\n  - ${differences.join('\n  - ')}`);
  }
  const read = async (file: string) => {
    try {
      return await readSafetensorsFile(join(directory, file));
    } catch (error) {
      throw invalid(directory, (error as Error).message, error);
    }
  };
  const weights = await read(WEIGHTS_FILE);
  // Names, shapes and finiteness, the file named: NaN weights are refused here, not trained on.
  validateWeights(config, weights.tensors, { subject: join(directory, WEIGHTS_FILE) });
  if (!(await exists(join(directory, STATE_FILE)))) return { weights: weights.tensors };

  let state: Record<string, unknown>;
  try {
    state = JSON.parse(await readFile(join(directory, STATE_FILE), 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw invalid(directory, `${STATE_FILE} is unreadable: ${(error as Error).message}`, error);
  }
  if (state.format !== STATE_FORMAT) {
    throw invalid(directory, `${STATE_FILE} format is ${String(state.format)}, expected ${STATE_FORMAT}`);
  }
  // Checkpoints written before the moments moved to their subfolder keep them beside the weights.
  const optimizerFile =
    !(await exists(join(directory, OPTIMIZER_FILE))) && (await exists(join(directory, LEGACY_OPTIMIZER_FILE)))
      ? LEGACY_OPTIMIZER_FILE
      : OPTIMIZER_FILE;
  const optimizer = await read(optimizerFile);
  assertFiniteTensors(optimizer.tensors, join(directory, optimizerFile));
  if (typeof state.saveId !== 'string' || state.saveId === '') {
    throw invalid(
      directory,
      `${STATE_FILE}: saveId must be a non-empty string, found ${state.saveId === undefined ? 'no saveId' : JSON.stringify(state.saveId)}`,
    );
  }
  for (const [file, contents] of [
    [WEIGHTS_FILE, weights],
    [optimizerFile, optimizer],
  ] as const) {
    const found = contents.metadata[SAVE_ID_KEY];
    if (found === undefined) {
      const keys = Object.keys(contents.metadata);
      throw invalid(
        directory,
        `${file}: expected the metadata key ${SAVE_ID_KEY} (= ${JSON.stringify(state.saveId)}, named by ${STATE_FILE}), found ${keys.length === 0 ? 'no metadata keys' : `only ${keys.map((key) => JSON.stringify(key)).join(', ')}`} (a damaged file, or one written by another tool)`,
      );
    }
    if (found !== state.saveId) {
      throw invalid(
        directory,
        `${file}: ${SAVE_ID_KEY} is ${JSON.stringify(found)} but ${STATE_FILE} names ${JSON.stringify(state.saveId)} (the files come from different saves: a save was interrupted)`,
      );
    }
  }
  const integer = (field: string) => {
    const value = state[field];
    if (!Number.isSafeInteger(value) || (value as number) < 0) {
      throw invalid(
        directory,
        `${STATE_FILE}: ${field} must be a non-negative integer, found ${String(value)}`,
      );
    }
    return value as number;
  };
  return {
    weights: weights.tensors,
    optimizer: optimizer.tensors,
    state: { step: integer('step'), skippedSteps: integer('skippedSteps'), seed: integer('seed') },
  };
}
