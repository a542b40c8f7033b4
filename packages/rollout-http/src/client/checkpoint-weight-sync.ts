import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ModelConfig,
  MoerlError,
  type NamedTensors,
  writeHfConfigFile,
  writeSafetensorsFile,
} from '@moerl/core';

export interface CheckpointWeightSyncOptions {
  /** Where checkpoints are written, one `v<version>` folder each; every server must be able to read it. */
  readonly directory: string;
  readonly config: ModelConfig;
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

/**
 * A `weightSync` for `createHttpRolloutEngine`: writes the weights as a checkpoint directory (config.json +
 * model.safetensors) and asks every server to load it through SGLang's `/update_weights_from_disk`,
 * checking that each one reports the new version.
 */
export function checkpointWeightSync(
  options: CheckpointWeightSyncOptions,
): (weights: NamedTensors, version: number, servers: readonly string[]) => Promise<void> {
  const fetchImpl = options.fetch ?? fetch;
  return async (weights, version, servers) => {
    const path = join(options.directory, `v${version}`);
    await mkdir(path, { recursive: true });
    await writeHfConfigFile(join(path, 'config.json'), options.config);
    await writeSafetensorsFile(join(path, 'model.safetensors'), weights);
    await Promise.all(
      servers.map(async (server) => {
        const response = await fetchImpl(`${server}/update_weights_from_disk`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model_path: path, weight_version: String(version) }),
          signal: AbortSignal.timeout(options.timeoutMs ?? 300_000),
        });
        const text = await response.text();
        let reported: unknown;
        try {
          reported = (JSON.parse(text) as { weight_version?: unknown }).weight_version;
        } catch {
          reported = undefined;
        }
        if (!response.ok || reported !== String(version)) {
          throw new MoerlError(
            'IO_ERROR',
            `server ${server} did not load ${path}: expected weight_version "${version}", found HTTP ${response.status} ${text.slice(0, 300)}`,
            { details: { server, path, status: response.status } },
          );
        }
      }),
    );
  };
}
