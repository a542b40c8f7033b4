import { join } from 'node:path';
import {
  type ModelConfig,
  MoerlError,
  modelWeightsPath,
  type NamedTensors,
  readHfConfigFile,
  readModelWeights,
  validateWeights,
} from '@moerl/core';

/**
 * Reads the weights of a checkpoint directory (`model.safetensors`, or the shards of its index). With `expected` (the served model), the directory's
 * `config.json` is read and validated as at start and must describe the same model (`CONFIG_INVALID`
 * naming the fields that differ), and the weights must match it and be finite (`CHECKPOINT_INVALID`,
 * `NON_FINITE` naming the tensor), all before the engine sees them.
 */
export async function loadCheckpointWeights(
  directory: string,
  expected?: ModelConfig,
): Promise<NamedTensors> {
  if (expected !== undefined) {
    const configPath = join(directory, 'config.json');
    const pushed = await readHfConfigFile(configPath);
    const differences = configDifferences(expected, pushed);
    if (differences.length > 0) {
      throw new MoerlError(
        'CONFIG_INVALID',
        `${configPath} describes another model than the one served:\n  - ${differences.join('\n  - ')}`,
        { details: { path: configPath, differences } },
      );
    }
  }
  const tensors = await readModelWeights(directory);
  if (expected !== undefined) validateWeights(expected, tensors, { subject: modelWeightsPath(directory) });
  return tensors;
}

/** `field: served a, found b` for every field on which two model configs differ. */
function configDifferences(served: ModelConfig, found: ModelConfig): string[] {
  const show = (value: unknown) => (Array.isArray(value) ? `[${value.join(', ')}]` : String(value));
  const keys = new Set([...Object.keys(served), ...Object.keys(found)]) as Set<keyof ModelConfig>;
  return [...keys]
    .filter((key) => show(served[key]) !== show(found[key]))
    .map((key) => `${key}: served ${show(served[key])}, found ${show(found[key])}`);
}
