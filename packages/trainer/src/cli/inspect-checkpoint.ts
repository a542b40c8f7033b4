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

/** What `moerl inspect --json` prints: each config.json and each safetensors file with its tensors. */
export interface CheckpointDescription {
  readonly configs: readonly { readonly file: string; readonly config: Record<string, unknown> }[];
  readonly tensorFiles: readonly {
    readonly file: string;
    readonly tensors: readonly {
      readonly name: string;
      readonly dtype: string;
      readonly shape: readonly number[];
      readonly bytes: number;
    }[];
    readonly metadata: Readonly<Record<string, string>>;
    readonly bytes: number;
  }[];
}

export async function describeCheckpoint(path: string): Promise<CheckpointDescription> {
  const { configs, tensors } = await checkpointFiles(path);
  if (configs.length === 0 && tensors.length === 0) {
    throw new MoerlError('INVALID_ARGUMENT', `inspect: no config.json or .safetensors file in ${path}`, {
      details: { path },
    });
  }
  const configEntries: CheckpointDescription['configs'][number][] = [];
  const tensorFiles: CheckpointDescription['tensorFiles'][number][] = [];
  for (const file of configs) configEntries.push({ file, config: { ...(await readHfConfigFile(file)) } });
  for (const file of tensors) {
    const contents = await readSafetensorsFile(file);
    const entries = [...contents.tensors]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, tensor]) => ({
        name,
        dtype: tensor.dtype,
        shape: [...tensor.shape],
        bytes: tensor.data.byteLength,
      }));
    tensorFiles.push({
      file,
      tensors: entries,
      metadata: contents.metadata,
      bytes: entries.reduce((total, entry) => total + entry.bytes, 0),
    });
  }
  return { configs: configEntries, tensorFiles };
}

/** A readable description of a checkpoint: model config, then every tensor with dtype, shape and size. */
export async function inspectCheckpoint(path: string): Promise<string> {
  const { configs, tensorFiles } = await describeCheckpoint(path);
  const lines: string[] = [];
  for (const { file, config } of configs) {
    lines.push(`${file}:`);
    for (const [key, value] of Object.entries(config)) lines.push(`  ${key}: ${JSON.stringify(value)}`);
  }
  for (const { file, tensors, metadata, bytes } of tensorFiles) {
    lines.push(`${file} (${basename(file)}):`);
    for (const tensor of tensors) {
      lines.push(`  ${tensor.name}  ${tensor.dtype}  [${tensor.shape.join(', ')}]  ${tensor.bytes} B`);
    }
    for (const [key, value] of Object.entries(metadata)) lines.push(`  metadata ${key}: ${value}`);
    lines.push(`  ${tensors.length} tensors, ${megabytes(bytes)}`);
  }
  return lines.join('\n');
}
