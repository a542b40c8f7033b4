import { join } from 'node:path';
import { createOnnxRolloutEngine, type OnnxRolloutEngineOptions } from '@moerl/backend-onnx';
import {
  type ModelConfig,
  MoerlError,
  type NamedTensors,
  type RolloutEngine,
  readHfConfigFile,
  readSafetensorsFile,
  validateWeights,
} from '@moerl/core';
import { createSglangServer, type SglangServer, type SglangServerOptions } from './sglang-server.js';

export interface ServeOnnxEngineOptions
  extends Omit<SglangServerOptions, 'engine' | 'loadWeights'>,
    Omit<OnnxRolloutEngineOptions, 'config' | 'weights' | 'onWarning'> {
  /** A directory with `config.json` (Hugging Face Qwen3-MoE) and `model.safetensors`. */
  readonly checkpointDir: string;
  readonly onWarning?: (message: string) => void;
}

export interface ServedOnnxEngine extends SglangServer {
  readonly engine: RolloutEngine;
}

/**
 * Reads `model.safetensors` of a checkpoint directory. With `expected` (the served model), the directory's
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
  const weightsPath = join(directory, 'model.safetensors');
  const { tensors } = await readSafetensorsFile(weightsPath);
  if (expected !== undefined) validateWeights(expected, tensors, { subject: weightsPath });
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

/**
 * `moerl serve`: builds the backend-onnx engine from a checkpoint directory and serves it with the SGLang
 * `/generate` subset. `/update_weights_from_disk` loads another directory's `model.safetensors` (same
 * config) and bumps the weight version. `close()` stops the server and disposes the engine.
 */
export async function serveOnnxEngine(options: ServeOnnxEngineOptions): Promise<ServedOnnxEngine> {
  // Engine and server options share one object: each side reads its own keys and ignores the other's (the
  // interface extends both, so a name meaning two things would not compile), so new options flow through.
  const { checkpointDir, ...shared } = options;
  const config = await readHfConfigFile(join(checkpointDir, 'config.json'));
  const weights = await loadCheckpointWeights(checkpointDir, config);
  const engine = await createOnnxRolloutEngine({ ...shared, config, weights });
  let server: SglangServer;
  try {
    server = await createSglangServer({
      ...shared,
      engine,
      loadWeights: (path) => loadCheckpointWeights(path, config),
    });
  } catch (error) {
    await engine.dispose();
    throw error;
  }
  return {
    ...server,
    engine,
    close: async () => {
      await server.close();
      await engine.dispose();
    },
  };
}
