import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createOnnxRolloutEngine, type OnnxRolloutEngineOptions } from '@moerl/backend-onnx';
import { type RolloutEngine, readHfConfigFile } from '@moerl/core';
import {
  createSglangServer,
  loadCheckpointWeights,
  type SglangServer,
  type SglangServerOptions,
} from '@moerl/rollout-http';
import { loadHfTokenizer } from '../tasks/hf-tokenizer.js';

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
 * `moerl serve`: builds the backend-onnx engine from a checkpoint directory (with its tokenizer.json and
 * tokenizer_config.json when it has them, for `text` in and out) and serves it with
 * @moerl/rollout-http's SGLang `/generate` subset (and vLLM's `/v1/completions`). Weights are read with
 * `loadCheckpointWeights`, at start and on `/update_weights_from_disk` (another directory with the same
 * config; non-finite weights and another model's config are refused before the engine sees them), which
 * bumps the weight version. `close()` stops the server and disposes the engine.
 *
 * It lives here, where both packages are known: the HTTP package serves any `RolloutEngine` and never
 * pulls onnxruntime.
 */
export async function serveOnnxEngine(options: ServeOnnxEngineOptions): Promise<ServedOnnxEngine> {
  // Engine and server options share one object: each side reads its own keys and ignores the other's (the
  // interface extends both, so a name meaning two things would not compile), so new options flow through.
  const { checkpointDir, ...shared } = options;
  const config = await readHfConfigFile(join(checkpointDir, 'config.json'));
  const weights = await loadCheckpointWeights(checkpointDir, config);
  // A checkpoint with a Hugging Face tokenizer takes `text` prompts and answers with decoded `text`.
  const tokenizer =
    options.tokenizer ??
    (existsSync(join(checkpointDir, 'tokenizer.json')) ? await loadHfTokenizer(checkpointDir) : undefined);
  const engine = await createOnnxRolloutEngine({ ...shared, config, weights });
  let server: SglangServer;
  try {
    server = await createSglangServer({
      ...shared,
      ...(tokenizer === undefined
        ? {}
        : {
            tokenizer: { encode: (text) => tokenizer.encode(text), decode: (ids) => tokenizer.decode(ids) },
          }),
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
