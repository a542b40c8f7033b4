import { join } from 'node:path';
import { createOnnxRolloutEngine, type OnnxRolloutEngineOptions } from '@moerl/backend-onnx';
import { type NamedTensors, type RolloutEngine, readHfConfigFile, readSafetensorsFile } from '@moerl/core';
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

/** Reads `model.safetensors` of a checkpoint directory (config.json is read once, at start). */
export async function loadCheckpointWeights(directory: string): Promise<NamedTensors> {
  return (await readSafetensorsFile(join(directory, 'model.safetensors'))).tensors;
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
  const weights = await loadCheckpointWeights(checkpointDir);
  const engine = await createOnnxRolloutEngine({ ...shared, config, weights });
  let server: SglangServer;
  try {
    server = await createSglangServer({ ...shared, engine, loadWeights: loadCheckpointWeights });
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
