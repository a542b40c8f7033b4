import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHfConfigFile, writeSafetensorsFile } from '@moerl/core';
import type { RunConfig } from '../config/run-config-schema.js';
import { initialWeights, modelConfigOf } from '../run/model-setup.js';
import { taskOf } from '../tasks/run-task.js';

/**
 * A checkpoint directory (config.json + model.safetensors) of a run config's model at initialisation, in
 * a fresh temporary folder: what `moerl serve --preset …` starts from before a trainer pointed at it with
 * `rollout.servers` pushes its policy. The caller removes the folder.
 */
export async function writeInitialCheckpoint(config: RunConfig): Promise<string> {
  const modelConfig = await modelConfigOf(config, await taskOf(config));
  const directory = await mkdtemp(join(tmpdir(), 'moerl-serve-'));
  try {
    await writeHfConfigFile(join(directory, 'config.json'), modelConfig);
    await writeSafetensorsFile(
      join(directory, 'model.safetensors'),
      await initialWeights(config, modelConfig),
    );
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  return directory;
}
