import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { MoerlError, readHfConfigFile, readSafetensorsFile } from '@moerl/core';
import { readLatestCheckpoint, runPaths } from '../run/run-directory.js';

/** Finds the files to describe: a run directory's latest checkpoint, a checkpoint directory, or one file. */
async function checkpointFiles(path: string): Promise<{ configs: string[]; tensors: string[] }> {
  const info = await stat(path).catch((error: unknown) => {
    throw new MoerlError('INVALID_ARGUMENT', `inspect: ${path} does not exist`, {
      cause: error,
      details: { path },
    });
  });
  if (info.isFile())
    return path.endsWith('.json') ? { configs: [path], tensors: [] } : { configs: [], tensors: [path] };
  const entries = await readdir(path);
  if (entries.includes('checkpoints')) {
    const { trainerDirectory } = await readLatestCheckpoint(runPaths(path));
    return checkpointFiles(trainerDirectory);
  }
  return {
    configs: entries.filter((entry) => entry === 'config.json').map((entry) => join(path, entry)),
    tensors: entries
      .filter((entry) => entry.endsWith('.safetensors'))
      .map((entry) => join(path, entry))
      .sort(),
  };
}

/** A run directory's latest checkpoint, or the directory itself when it already holds a checkpoint. */
export async function checkpointDirectory(path: string): Promise<string> {
  const entries = await readdir(path).catch((error: unknown) => {
    throw new MoerlError('INVALID_ARGUMENT', `${path} is not a readable directory`, {
      cause: error,
      details: { path },
    });
  });
  if (entries.includes('checkpoints')) return (await readLatestCheckpoint(runPaths(path))).trainerDirectory;
  return path;
}

const megabytes = (bytes: number) => `${(bytes / 2 ** 20).toFixed(3)} MiB`;

/** A readable description of a checkpoint: model config, then every tensor with dtype, shape and size. */
export async function inspectCheckpoint(path: string): Promise<string> {
  const { configs, tensors } = await checkpointFiles(path);
  if (configs.length === 0 && tensors.length === 0) {
    throw new MoerlError('INVALID_ARGUMENT', `inspect: no config.json or .safetensors file in ${path}`, {
      details: { path },
    });
  }
  const lines: string[] = [];
  for (const file of configs) {
    const config = await readHfConfigFile(file);
    lines.push(`${file}:`);
    for (const [key, value] of Object.entries(config)) lines.push(`  ${key}: ${JSON.stringify(value)}`);
  }
  for (const file of tensors) {
    const contents = await readSafetensorsFile(file);
    let total = 0;
    lines.push(`${file} (${basename(file)}):`);
    for (const [name, tensor] of [...contents.tensors].sort(([a], [b]) => a.localeCompare(b))) {
      total += tensor.data.byteLength;
      lines.push(`  ${name}  ${tensor.dtype}  [${tensor.shape.join(', ')}]  ${tensor.data.byteLength} B`);
    }
    for (const [key, value] of Object.entries(contents.metadata)) lines.push(`  metadata ${key}: ${value}`);
    lines.push(`  ${contents.tensors.size} tensors, ${megabytes(total)}`);
  }
  return lines.join('\n');
}
