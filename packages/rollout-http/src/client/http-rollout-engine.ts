import {
  concatRoutingRecords,
  type GenerateRequest,
  type ModelConfig,
  MoerlError,
  type NamedTensors,
  type RolloutEngine,
  type RolloutEngineCapabilities,
  type RolloutEngineStats,
  type RoutingRecord,
  type SamplingParams,
  type Trajectory,
} from '@moerl/core';
import type { RouterCacheStats } from '@moerl/router-cache';
import type { ClientProtocol, ProtocolCall, ProtocolGeneration } from './client-protocol.js';
import { ClientRoutingCache, type ClientRoutingMatch } from './client-routing-cache.js';
import { type PlannedCall, planCalls } from './plan-calls.js';
import { type Balancing, ServerPool } from './server-pool.js';
import { sglangClientProtocol } from './sglang-client-protocol.js';
import { vllmClientProtocol } from './vllm-client-protocol.js';

export interface HttpRolloutEngineOptions {
  /**
   * Base URLs of the servers: SGLang (or `moerl serve`) for protocol `sglang`, vLLM (or `moerl serve`) for
   * `vllm`; both started with --enable-return-routed-experts.
   */
  readonly servers: readonly string[];
  /** `sglang`: POST /generate (default). `vllm`: POST /v1/completions with routing on each choice. */
  readonly protocol?: 'sglang' | 'vllm';
  /** The `model` field of vLLM requests; vLLM serves its first model when absent. */
  readonly model?: string;
  /** The model the servers serve; routing is checked against it and dense layers dropped by its indices. */
  readonly config: ModelConfig;
  /** Default `least-loaded`. */
  readonly balancing?: Balancing;
  /** Requests in flight per server. Default 4. */
  readonly maxConcurrentPerServer?: number;
  /** Per attempt. Default 120 000 ms. */
  readonly timeoutMs?: number;
  /** Extra attempts after a connection error, timeout or 5xx. Default 3. */
  readonly retries?: number;
  /** First backoff; doubles per attempt. Default 100 ms. */
  readonly retryBackoffMs?: number;
  /**
   * Ask for uint8/uint16 routing (`routed_experts_compact`, understood by `moerl serve` only). Default false.
   * vLLM always sends its narrow `.npy` dtype.
   */
  readonly compactRouting?: boolean;
  /**
   * Send `sampling_seed` (see `planCalls`). Default true. `moerl serve` gives sample j of a call the fork j
   * of that seed; a server that applies one seed to all n samples of a call would return identical samples,
   * so turn it off for such servers (sampling is then not reproducible).
   */
  readonly sendSeed?: boolean;
  /**
   * Keep fetched routing in a @moerl/router-cache tree keyed by weight version and ask servers only for rows
   * past the longest cached prefix (`routed_experts_start_len` / `routed_experts_prompt_start`). Default true.
   * vLLM reports no weight version: after loading weights into it out of band, call `setWeightVersion`.
   */
  readonly prefixReuse?: boolean;
  /** Bytes of routing (+16 B per position) the client keeps for reuse. Default 64 MiB. */
  readonly prefixCacheBytes?: number;
  /** Accept trajectories of different server weight versions in one batch. Default false. */
  readonly allowMixedWeightVersions?: boolean;
  /** Version reported until a server names one (or when it names a non-integer one). Default 0. */
  readonly weightVersion?: number;
  /**
   * Pushes weights to the servers for `updateWeights` (see `checkpointWeightSync`). Without it
   * `updateWeights` throws UNSUPPORTED: external servers load checkpoints out of band.
   */
  readonly weightSync?: (weights: NamedTensors, version: number, servers: readonly string[]) => Promise<void>;
  /** Default `['fp32', 'bf16', 'fp16']`: what the servers compute in is theirs to say. */
  readonly precisions?: RolloutEngineCapabilities['precisions'];
  /** Called before each retry. */
  readonly onRetry?: (info: { requestId: string; server: string; attempt: number; reason: string }) => void;
  /** Injected for tests; default the global fetch. */
  readonly fetch?: typeof fetch;
}

/** A trajectory fetched over HTTP, with where it came from. */
export interface HttpTrajectory extends Trajectory {
  readonly server: string;
  /** The weight version string the server reported, if any. */
  readonly serverWeightVersion: string | undefined;
  /** Prompt routing rows taken from the client cache instead of the wire. */
  readonly reusedRoutingRows: number;
}

export interface HttpRolloutEngine extends RolloutEngine {
  generate(requests: readonly GenerateRequest[], samplingParams: SamplingParams): Promise<HttpTrajectory[]>;
  /** The weight version each server last reported (from responses), by base URL. */
  serverWeightVersions(): Readonly<Record<string, string | undefined>>;
  /** Routing bytes received over the wire (base64 text), for the benchmark. */
  wireStats(): {
    readonly routingChars: number;
    readonly retries: number;
    readonly reusedRoutingRows: number;
  };
  /** The client's routing cache (router-cache statistics). */
  prefixCacheStats(): RouterCacheStats;
  /**
   * Says the servers now serve `version` (weights loaded out of band): later trajectories carry it and
   * cached routing of older weights is dropped. Needed for vLLM, which reports no version.
   */
  setWeightVersion(version: number): void;
}

class RetryableError extends Error {}

const backoff = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A RolloutEngine that samples on SGLang or vLLM servers and returns validated routing. */
export function createHttpRolloutEngine(options: HttpRolloutEngineOptions): HttpRolloutEngine {
  const { config } = options;
  const protocol: ClientProtocol = protocolOf(options);
  const pool = new ServerPool(
    options.servers.map((url) => url.replace(/\/+$/, '')),
    options.maxConcurrentPerServer ?? 4,
    options.balancing ?? 'least-loaded',
  );
  const fetchImpl = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const retries = options.retries ?? 3;
  const retryBackoffMs = options.retryBackoffMs ?? 100;
  const prefixReuse = options.prefixReuse ?? true;
  const cache = new ClientRoutingCache(config, options.prefixCacheBytes ?? 64 * 1024 * 1024);
  const reported: Record<string, string | undefined> = {};
  let weightVersion = options.weightVersion ?? 0;
  let disposed = false;
  const counters = {
    requests: 0,
    promptTokens: 0,
    generatedTokens: 0,
    cachedPromptTokens: 0,
    generateSeconds: 0,
    routingChars: 0,
    retries: 0,
  };

  interface Sent {
    readonly decoded: ProtocolGeneration[];
    readonly server: string;
  }

  /** One planned call (n samples of one prompt), retried whole on connection errors, timeouts and 5xx. */
  async function send(
    call: PlannedCall,
    requests: readonly GenerateRequest[],
    held: ClientRoutingMatch | undefined,
  ): Promise<Sent> {
    const first = requests[call.indices[0]!]!;
    const spec: ProtocolCall = {
      config,
      requestIds: call.indices.map((index) => requests[index]!.id),
      promptIds: first.promptIds,
      params: call.params,
      seed: options.sendSeed === false ? undefined : call.seed,
      startLen: held?.length ?? 0,
      heldRouting: held?.routing,
      compactRouting: options.compactRouting === true,
    };
    const body = protocol.body(spec);
    let lastReason = '';
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        counters.retries++;
        await backoff(retryBackoffMs * 2 ** (attempt - 1));
      }
      const server = await pool.acquire();
      const url = pool.urls[server]!;
      try {
        const text = await post(`${url}${protocol.path}`, body);
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          // A proxy's HTML error page or a cut-off body: the whole request is retried, never half-used.
          throw new RetryableError(
            `${url}${protocol.path} answered with a body that is not JSON: ${text.slice(0, 200)}`,
          );
        }
        counters.routingChars += protocol.routingChars(json);
        const decoded = protocol.decode(json, spec);
        reported[url] = decoded[0]?.weightVersion;
        return { decoded, server: url };
      } catch (error) {
        if (!(error instanceof RetryableError)) {
          if (MoerlError.isInstance(error, 'ROUTING_MISSING')) {
            throw new MoerlError('ROUTING_MISSING', `server ${url}: ${error.message}`, {
              details: { ...error.details, server: url },
            });
          }
          throw error;
        }
        lastReason = error.message;
        if (attempt < retries) {
          options.onRetry?.({ requestId: first.id, server: url, attempt: attempt + 1, reason: lastReason });
        }
      } finally {
        pool.release(server);
      }
    }
    throw new MoerlError(
      'IO_ERROR',
      `request ${first.id}: no server answered after ${retries + 1} attempts; last: ${lastReason}`,
      { details: { requestId: first.id, attempts: retries + 1 } },
    );
  }

  async function post(url: string, body: unknown): Promise<string> {
    let response: Response;
    let text: string;
    try {
      response = await fetchImpl(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      const reason =
        (error as Error).name === 'TimeoutError'
          ? `timed out after ${timeoutMs} ms`
          : String((error as Error).cause ?? error);
      throw new RetryableError(`${url}: ${reason}`);
    }
    if (response.status >= 500)
      throw new RetryableError(`${url}: HTTP ${response.status} ${text.slice(0, 200)}`);
    if (!response.ok) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `${url} refused the request: HTTP ${response.status} ${text.slice(0, 500)}`,
        { details: { status: response.status, url } },
      );
    }
    return text;
  }

  /** The version a response's routing belongs to: the server's, else (vLLM) the one this client knows. */
  const versionLabel = (decoded: ProtocolGeneration) => decoded.weightVersion ?? `client:${weightVersion}`;

  function toTrajectory(
    request: GenerateRequest,
    decoded: ProtocolGeneration,
    server: string,
    held: RoutingRecord | undefined,
  ): HttpTrajectory {
    // Both parts were validated (the decoder checks what arrived, the cache what it stored); only the
    // row count of the joined record is left to check.
    const routing = held === undefined ? decoded.routing : concatRoutingRecords([held, decoded.routing]);
    const fed = request.promptIds.length + decoded.outputIds.length - 1;
    if (routing.positions !== fed) {
      throw new MoerlError(
        'ROUTING_SHAPE',
        `request ${request.id}: routing covers ${routing.positions} positions, expected prompt + output − 1 = ${fed}`,
        { details: { requestId: request.id, expected: fed, found: routing.positions } },
      );
    }
    const version = decoded.weightVersion;
    if (options.allowMixedWeightVersions !== true && changedWeightsMidRequest(decoded)) {
      throw new MoerlError(
        'BACKEND_CONFLICT',
        `request ${request.id}: server ${server} changed weights mid-request (versions ${decoded.weightVersionSpans.map((s) => s.version).join(', ')}); set allowMixedWeightVersions to accept it`,
        { details: { requestId: request.id, spans: decoded.weightVersionSpans } },
      );
    }
    return {
      id: request.id,
      groupId: request.groupId,
      promptIds: request.promptIds,
      responseIds: decoded.outputIds,
      engineLogprobs: decoded.logprobs,
      routing,
      finishReason: decoded.finishReason,
      weightVersion: version !== undefined && /^\d+$/.test(version) ? Number(version) : weightVersion,
      server,
      serverWeightVersion: version,
      reusedRoutingRows: held?.positions ?? 0,
    };
  }

  /** Runs one planned call, asking only for rows past the longest cached prefix of its prompt. */
  async function runCall(call: PlannedCall, requests: readonly GenerateRequest[]): Promise<HttpTrajectory[]> {
    const first = requests[call.indices[0]!]!;
    const build = (sent: Sent, held: RoutingRecord | undefined) =>
      sent.decoded.map((decoded, sample) =>
        toTrajectory(requests[call.indices[sample]!]!, decoded, sent.server, held),
      );
    const held = prefixReuse ? cache.match(first.promptIds) : undefined;
    if (held !== undefined) {
      try {
        const sent = await send(call, requests, held);
        if (sent.decoded.every((decoded) => versionLabel(decoded) === held.weightVersion)) {
          counters.cachedPromptTokens += held.length * call.indices.length;
          return remember(sent, build(sent, held.routing));
        }
        // The server's weights moved on: the held rows are stale. Ask again, whole.
      } finally {
        held.release();
      }
    }
    const sent = await send(call, requests, undefined);
    return remember(sent, build(sent, undefined));
  }

  /** Caches each answered sequence's routing, so later prompts that extend it ask only for new rows. */
  function remember(sent: Sent, trajectories: HttpTrajectory[]): HttpTrajectory[] {
    if (!prefixReuse) return trajectories;
    sent.decoded.forEach((decoded, sample) => {
      const trajectory = trajectories[sample]!;
      // Nothing generated (an abort): the routing stops short of the prompt, so there is no sequence to key.
      if (trajectory.responseIds.length === 0) return;
      if (changedWeightsMidRequest(decoded)) return;
      const fed = new Int32Array(trajectory.routing!.positions);
      fed.set(trajectory.promptIds);
      fed.set(
        trajectory.responseIds.subarray(0, fed.length - trajectory.promptIds.length),
        trajectory.promptIds.length,
      );
      cache.insert(fed, trajectory.routing!, versionLabel(decoded));
    });
    return trajectories;
  }

  function checkRequests(requests: readonly GenerateRequest[]): void {
    requests.forEach((request, index) => {
      if (!(request.promptIds instanceof Int32Array) || request.promptIds.length === 0) {
        throw new MoerlError(
          'INVALID_ARGUMENT',
          `request ${request.id} (#${index}): promptIds must be a non-empty Int32Array`,
          {
            details: { requestId: request.id, field: 'promptIds' },
          },
        );
      }
      const bad = request.promptIds.find((id) => id < 0 || id >= config.vocabSize);
      if (bad !== undefined) {
        throw new MoerlError(
          'INVALID_ARGUMENT',
          `request ${request.id}: promptIds holds ${bad}, outside the vocabulary [0, ${config.vocabSize})`,
          { details: { requestId: request.id, field: 'promptIds', found: bad } },
        );
      }
    });
  }

  const engine: HttpRolloutEngine = {
    specificationVersion: 'v1',
    backendName: `http-${protocol.name}`,
    capabilities: {
      recordRouting: true,
      prefixCache: prefixReuse,
      batchedGeneration: true,
      precisions: options.precisions ?? ['fp32', 'bf16', 'fp16'],
    },
    config,
    async generate(requests, samplingParams) {
      if (disposed)
        throw new MoerlError('INVALID_ARGUMENT', 'generate called on a disposed HTTP rollout engine');
      checkRequests(requests);
      const started = performance.now();
      const calls = planCalls(requests, samplingParams);
      const running = new Map<PlannedCall, Promise<HttpTrajectory[]>>();
      for (const call of calls) {
        // Followers wait for their leader, whose response puts the prompt's routing in the cache.
        const leader = call.leads === undefined ? undefined : running.get(call.leads);
        const after =
          leader === undefined
            ? Promise.resolve()
            : leader.then(
                () => undefined,
                () => undefined,
              );
        running.set(
          call,
          after.then(() => runCall(call, requests)),
        );
      }
      const settled = await Promise.allSettled(running.values());
      const failure = settled.find((result) => result.status === 'rejected');
      if (failure !== undefined) throw (failure as PromiseRejectedResult).reason;
      const trajectories = new Array<HttpTrajectory>(requests.length);
      calls.forEach((call, index) => {
        const result = (settled[index] as PromiseFulfilledResult<HttpTrajectory[]>).value;
        call.indices.forEach((position, sample) => {
          trajectories[position] = result[sample]!;
        });
      });
      checkVersions(trajectories);
      counters.requests += requests.length;
      for (const trajectory of trajectories) {
        counters.promptTokens += trajectory.promptIds.length;
        counters.generatedTokens += trajectory.responseIds.length;
      }
      counters.generateSeconds += (performance.now() - started) / 1000;
      const last = trajectories.at(-1);
      if (last !== undefined) weightVersion = last.weightVersion;
      return trajectories;
    },
    async updateWeights(weights, version) {
      if (options.weightSync === undefined) {
        throw new MoerlError(
          'UNSUPPORTED',
          'updateWeights: weight sync is out of band for external servers (load the checkpoint on each server, e.g. POST /update_weights_from_disk); pass weightSync to push weights from here',
        );
      }
      // Cleared before and after: a push that fails part-way may leave some servers on the new weights.
      cache.clear();
      try {
        await options.weightSync(weights, version, pool.urls);
        weightVersion = version;
      } finally {
        cache.clear();
      }
    },
    stats(): RolloutEngineStats {
      return {
        weightVersion,
        requests: counters.requests,
        promptTokens: counters.promptTokens,
        generatedTokens: counters.generatedTokens,
        cachedPromptTokens: counters.cachedPromptTokens,
        generateSeconds: counters.generateSeconds,
      };
    },
    serverWeightVersions: () => ({ ...reported }),
    prefixCacheStats: () => cache.stats(),
    setWeightVersion(version) {
      if (!Number.isSafeInteger(version) || version < 0) {
        throw new MoerlError(
          'INVALID_ARGUMENT',
          `setWeightVersion: expected a non-negative integer, found ${version}`,
        );
      }
      weightVersion = version;
      cache.clear();
    },
    wireStats: () => ({
      routingChars: counters.routingChars,
      retries: counters.retries,
      reusedRoutingRows: counters.cachedPromptTokens,
    }),
    async dispose() {
      disposed = true;
      cache.clear();
    },
  };

  function checkVersions(trajectories: readonly HttpTrajectory[]): void {
    if (options.allowMixedWeightVersions === true) return;
    const versions = new Set(trajectories.map((trajectory) => trajectory.serverWeightVersion ?? '(none)'));
    if (versions.size > 1) {
      throw new MoerlError(
        'BACKEND_CONFLICT',
        `servers answered one batch with weight versions ${[...versions].join(', ')}; sync the servers or set allowMixedWeightVersions`,
        { details: { versions: [...versions] } },
      );
    }
  }

  return engine;
}

/** SGLang's `weight_versions` spans name more than one version: the weights changed while it generated. */
function changedWeightsMidRequest(decoded: ProtocolGeneration): boolean {
  return new Set(decoded.weightVersionSpans.map((span) => span.version)).size > 1;
}

function protocolOf(options: HttpRolloutEngineOptions): ClientProtocol {
  const name = options.protocol ?? 'sglang';
  if (name === 'sglang') return sglangClientProtocol;
  if (name === 'vllm') return vllmClientProtocol(options.model);
  throw new MoerlError('INVALID_ARGUMENT', `protocol: expected 'sglang' or 'vllm', found ${String(name)}`, {
    details: { field: 'protocol', found: name },
  });
}
