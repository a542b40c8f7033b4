import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ModelConfig,
  MoerlError,
  type NamedTensors,
  readHfConfigFile,
  readSafetensorsFile,
  writeHfConfigFile,
  writeSafetensorsFile,
} from '@moerl/core';

const CONFIG_FILE = 'config.json';
const WEIGHTS_FILE = 'model.safetensors';

/** Writes `model.safetensors`, then `config.json`, so a directory with a config holds complete weights. */
export async function saveCheckpoint(
  directory: string,
  config: ModelConfig,
  weights: NamedTensors,
): Promise<void> {
  await mkdir(directory, { recursive: true });
  await writeSafetensorsFile(join(directory, WEIGHTS_FILE), weights, { format: 'pt' });
  await writeHfConfigFile(join(directory, CONFIG_FILE), config);
}

/** Reads a checkpoint written by `saveCheckpoint`; `CHECKPOINT_INVALID` when absent, unreadable or for another model. */
export async function loadCheckpoint(directory: string, config: ModelConfig): Promise<NamedTensors> {
  let saved: ModelConfig;
  let weights: NamedTensors;
  try {
    saved = await readHfConfigFile(join(directory, CONFIG_FILE));
    weights = (await readSafetensorsFile(join(directory, WEIGHTS_FILE))).tensors;
  } catch (error) {
    if (MoerlError.isInstance(error, 'CHECKPOINT_INVALID')) throw error;
    throw new MoerlError(
      'CHECKPOINT_INVALID',
      `Cannot load the checkpoint in ${directory}: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error, details: { directory } },
    );
  }
  const differing = (Object.keys(config) as (keyof ModelConfig)[]).filter(
    (key) => JSON.stringify(config[key]) !== JSON.stringify(saved[key]),
  );
  if (differing.length > 0) {
    throw new MoerlError(
      'CHECKPOINT_INVALID',
      `The checkpoint in ${directory} is for another model: ${differing.join(', ')} differ`,
      { details: { directory, fields: differing } },
    );
  }
  return weights;
}
