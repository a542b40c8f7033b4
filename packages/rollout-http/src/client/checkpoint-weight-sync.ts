import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ModelConfig,
  MoerlError,
  type NamedTensors,
  writeHfConfigFile,
  writeSafetensorsFile,
} from '@moerl/core';
import { isObject, type JsonObject } from '../protocols/json-fields.js';

export interface CheckpointWeightSyncOptions {
  /** Where checkpoints are written, one `v<version>` folder each; every server must be able to read it. */
  readonly directory: string;
  readonly config: ModelConfig;
  readonly timeoutMs?: number;
  /**
   * Version folders kept on disk, newest first. Default 1: once every server has loaded a version, the
   * older folders this sync wrote are deleted (the servers hold the weights in memory).
   */
  readonly keepVersions?: number;
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
  const keep = options.keepVersions ?? 1;
  if (!Number.isInteger(keep) || keep < 1) {
    throw new MoerlError('INVALID_ARGUMENT', `keepVersions: expected an integer ≥ 1, found ${keep}`, {
      details: { field: 'keepVersions', found: keep },
    });
  }
  const written: string[] = [];
  const timeoutMs = options.timeoutMs ?? 300_000;

  /** One HTTP exchange; a connection failure names the server and what was being asked. */
  const exchange = async (server: string, route: string, init: RequestInit, path: string) => {
    try {
      const response = await fetchImpl(`${server}${route}`, {
        ...init,
        signal: AbortSignal.timeout(timeoutMs),
      });
      return { status: response.status, ok: response.ok, text: await response.text() };
    } catch (error) {
      throw new MoerlError(
        'IO_ERROR',
        `server ${server} could not be asked to load ${path} (${route}): ${String((error as Error).cause ?? error)}`,
        { cause: error, details: { server, path, route } },
      );
    }
  };

  /**
   * Asks one server to load `path` as `version` and checks the version it then serves: from the answer
   * (moerl serve), or from `/get_weight_version` when the answer names none (SGLang answers
   * `{success, message}`).
   */
  const loadOn = async (server: string, path: string, version: number) => {
    const answer = await exchange(
      server,
      '/update_weights_from_disk',
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model_path: path, weight_version: String(version) }),
      },
      path,
    );
    if (answer.status === 404) {
      throw new MoerlError(
        'UNSUPPORTED',
        `server ${server} has no /update_weights_from_disk (moerl serve and SGLang have it; vLLM does not): load ${path} into it another way, or pass your own weightSync`,
        { details: { server, path, status: 404 } },
      );
    }
    const body = parseObject(answer.text);
    let reported = body?.weight_version;
    if (answer.ok && body?.success !== false && reported === undefined) {
      const current = await exchange(server, '/get_weight_version', { method: 'GET' }, path);
      reported = current.ok ? parseObject(current.text)?.weight_version : undefined;
    }
    if (!answer.ok || body?.success === false || String(reported) !== String(version)) {
      throw new MoerlError(
        'IO_ERROR',
        `server ${server} did not load ${path}: expected weight_version "${version}", found HTTP ${answer.status} ${answer.text.slice(0, 300)}${reported === undefined ? '' : ` (serving version ${String(reported)})`}`,
        { details: { server, path, status: answer.status } },
      );
    }
  };

  return async (weights, version, servers) => {
    const path = join(options.directory, `v${version}`);
    await mkdir(path, { recursive: true });
    await writeHfConfigFile(join(path, 'config.json'), options.config);
    await writeSafetensorsFile(join(path, 'model.safetensors'), weights);
    await Promise.all(servers.map((server) => loadOn(server, path, version)));
    // The same version written again is the newest, not a second entry.
    const again = written.indexOf(path);
    if (again !== -1) written.splice(again, 1);
    written.push(path);
    for (const old of written.splice(0, Math.max(0, written.length - keep))) {
      await rm(old, { recursive: true, force: true });
    }
  };
}

function parseObject(text: string): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
