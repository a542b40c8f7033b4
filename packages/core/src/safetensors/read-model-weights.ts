import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MoerlError } from '../errors/moerl-error.js';
import type { NamedTensors } from '../tensors/tensor.js';
import { readSafetensorsFile } from './read-safetensors.js';

/** The weight files of a Hugging Face model directory. */
export const MODEL_WEIGHTS_FILE = 'model.safetensors';
export const MODEL_WEIGHTS_INDEX = 'model.safetensors.index.json';

/** Where a model directory's weights are named: its shard index when it has one, else model.safetensors. */
export function modelWeightsPath(directory: string): string {
  return existsSync(join(directory, MODEL_WEIGHTS_INDEX))
    ? join(directory, MODEL_WEIGHTS_INDEX)
    : join(directory, MODEL_WEIGHTS_FILE);
}

/**
 * The weights of a Hugging Face model directory: `model.safetensors`, or the shards that
 * `model.safetensors.index.json` maps every tensor to (as `save_pretrained` writes large models). Each shard
 * is read once; a tensor the index names must be in its shard, and a shard may hold only tensors the index
 * gives it (`CHECKPOINT_INVALID`, naming the file and the tensor).
 */
export async function readModelWeights(directory: string): Promise<NamedTensors> {
  const indexPath = join(directory, MODEL_WEIGHTS_INDEX);
  let indexText: string | undefined;
  try {
    indexText = await readFile(indexPath, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new MoerlError('IO_ERROR', `Could not read ${indexPath}: ${(error as Error).message}`, {
        cause: error,
        details: { path: indexPath },
      });
    }
  }
  if (indexText === undefined)
    return (await readSafetensorsFile(join(directory, MODEL_WEIGHTS_FILE))).tensors;
  const invalid = (problem: string, details: Record<string, unknown> = {}) =>
    new MoerlError('CHECKPOINT_INVALID', `${indexPath}: ${problem}`, {
      details: { path: indexPath, ...details },
    });
  let weightMap: Record<string, unknown>;
  try {
    weightMap = (JSON.parse(indexText) as { weight_map?: Record<string, unknown> }).weight_map ?? {};
  } catch (error) {
    throw invalid(`not valid JSON (${(error as Error).message})`);
  }
  if (typeof weightMap !== 'object' || weightMap === null || Object.keys(weightMap).length === 0) {
    throw invalid('has no weight_map naming the shard of each tensor');
  }
  const shards = new Map<string, string[]>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    // A shard is a file of this directory: no paths that leave it.
    if (
      typeof shard !== 'string' ||
      shard.includes('/') ||
      shard.includes('\\') ||
      !shard.endsWith('.safetensors')
    ) {
      throw invalid(
        `tensor ${tensor} maps to ${JSON.stringify(shard)}, not a .safetensors file of this directory`,
        {
          tensor,
        },
      );
    }
    shards.set(shard, [...(shards.get(shard) ?? []), tensor]);
  }
  const weights: NamedTensors = new Map();
  for (const [shard, names] of shards) {
    const { tensors } = await readSafetensorsFile(join(directory, shard));
    const expected = new Set(names);
    for (const name of names) {
      const tensor = tensors.get(name);
      if (tensor === undefined) throw invalid(`tensor ${name} is not in ${shard}`, { tensor: name, shard });
      weights.set(name, tensor);
    }
    for (const name of tensors.keys()) {
      if (!expected.has(name))
        throw invalid(`${shard} holds ${name}, which the index does not give it`, { tensor: name, shard });
    }
  }
  return weights;
}
