import { realpath } from 'node:fs/promises';
import { MoerlError, type NamedTensors, type RolloutEngine } from '@moerl/core';
import { type JsonRoute, listenJson } from './http-plumbing.js';
import { RequestBatcher } from './request-batcher.js';
import {
  type RouteContext,
  type ServerCounters,
  scheduledEngineAccess,
  type Tokenizer,
} from './route-context.js';
import { sglangRoutes } from './sglang-routes.js';
import { vllmCompletionRoutes } from './vllm-completions.js';

export type { Tokenizer } from './route-context.js';

export interface SglangServerOptions {
  /** Any core RolloutEngine; its `config` describes the model served. */
  readonly engine: RolloutEngine;
  /** Default `127.0.0.1` (loopback only). */
  readonly host?: string;
  /** Default 0: the OS picks a free port (read it from `server.port`). */
  readonly port?: number;
  /** Largest accepted request body. Default 1 MiB; larger → 413. */
  readonly maxBodyBytes?: number;
  /**
   * Calls accepted at once (running + waiting for the engine; a weight update from the start of its
   * checkpoint read). Default 64; more → 503.
   */
  readonly maxPendingRequests?: number;
  /**
   * Most requests (samples) in one engine call: HTTP calls that wait while the engine is busy are merged
   * into one batch up to this, each still sampling exactly as it would alone (needs an engine that claims
   * `capabilities.seedFork`; others run one call at a time). 1 turns merging off. Default 256.
   */
  readonly maxBatchRequests?: number;
  /**
   * Answer routing: SGLang's `return_routed_experts` (`--enable-return-routed-experts`) and vLLM's
   * `routed_experts` (null when off). Default true.
   */
  readonly returnRoutedExperts?: boolean;
  /** Loads a checkpoint directory for `/update_weights_from_disk`; without it that endpoint answers 400. */
  readonly loadWeights?: (path: string) => Promise<NamedTensors>;
  /**
   * The directory `/update_weights_from_disk` may load from: `model_path` must resolve (symbolic links
   * followed) inside it, else 400. Without it, anyone who reaches the port can make the server read any
   * checkpoint directory it can access and swap the weights (hence the loopback default host). Default none.
   */
  readonly weightsRoot?: string;
  readonly tokenizer?: Tokenizer;
  /** The model id of `/v1/models` and of completions that name none. Default the engine's backendName. */
  readonly modelName?: string;
  /** Logs unexpected (500) errors. Default `console.error`. */
  readonly onError?: (error: unknown) => void;
}

export interface SglangServerStats {
  readonly requests: number;
  readonly generated: number;
  readonly badRequests: number;
  readonly rejectedBusy: number;
  /** Engine calls made: fewer than `requests` when concurrent calls were merged into one batch. */
  readonly engineCalls: number;
  readonly weightVersion: number;
}

export interface SglangServer {
  /** `http://host:port`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  stats(): SglangServerStats;
  /** Stops listening and closes open connections; does not dispose the engine. */
  close(): Promise<void>;
}

const DEFAULT_MAX_BODY = 1024 * 1024;

/**
 * Serves a RolloutEngine over HTTP in two dialects: SGLang's `/generate` subset (with `/health`,
 * `/get_weight_version`, `/get_model_info` and `/update_weights_from_disk`) and vLLM's `/v1/completions`
 * with routed experts (with `/v1/models`). Calls that arrive while the engine is busy are merged into one
 * engine batch, and each request's samples still depend only on its own seed.
 */
export async function createSglangServer(options: SglangServerOptions): Promise<SglangServer> {
  const { engine } = options;
  const weightsRoot = options.weightsRoot === undefined ? undefined : await resolvedRoot(options.weightsRoot);
  const onError = options.onError ?? ((error: unknown) => console.error(error));
  const counters: ServerCounters = { requests: 0, generated: 0, badRequests: 0, rejectedBusy: 0 };
  const batcher = new RequestBatcher(engine, {
    maxPending: options.maxPendingRequests ?? 64,
    ...(options.maxBatchRequests === undefined ? {} : { maxBatchRequests: options.maxBatchRequests }),
  });
  const context: RouteContext = {
    engine,
    tokenizer: options.tokenizer,
    returnRoutedExperts: options.returnRoutedExperts !== false,
    counters,
    ...scheduledEngineAccess(batcher, counters),
  };
  const routes = new Map<string, JsonRoute>([
    ...sglangRoutes(context, { loadWeights: options.loadWeights, weightsRoot }),
    ...vllmCompletionRoutes(context, { modelName: options.modelName ?? engine.backendName }),
  ]);
  const server = await listenJson({
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY,
    routes,
    onErrorResponse: (status, error) => {
      if (status === 400) counters.badRequests++;
      if (status === 500) onError(error);
    },
  });
  return {
    url: server.url,
    host: server.host,
    port: server.port,
    stats: () => ({
      ...counters,
      engineCalls: batcher.engineCalls,
      weightVersion: engine.stats().weightVersion,
    }),
    close: () => server.close(),
  };
}

async function resolvedRoot(root: string): Promise<string> {
  try {
    return await realpath(root);
  } catch (error) {
    throw new MoerlError('INVALID_ARGUMENT', `weightsRoot must be an existing directory, found ${root}`, {
      details: { field: 'weightsRoot', found: root },
      cause: error,
    });
  }
}
