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
  sliceRoutingRecord,
  type Trajectory,
  validateRoutingRecord,
} from '@moerl/core';
import {
  type DecodedGeneration,
  decodeSglangGenerateResponse,
  type SglangRequestContext,
} from '../protocols/sglang.js';
import { type PlannedCall, planCalls } from './plan-calls.js';
import { PromptRoutingCache } from './prompt-routing-cache.js';
import { type Balancing, ServerPool } from './server-pool.js';

export interface HttpRolloutEngineOptions {
  /** Base URLs of SGLang-protocol servers (SGLang with --enable-return-routed-experts, or `moerl serve`). */
  readonly servers: readonly string[];
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
  /** Ask for uint8/uint16 routing (`routed_experts_compact`, understood by `moerl serve` only). Default false. */
  readonly compactRouting?: boolean;
  /**
   * Send `sampling_seed` (see `planCalls`). Default true. `moerl serve` gives sample j of a call the fork j
   * of that seed; a server that applies one seed to all n samples of a call would return identical samples,
   * so turn it off for such servers (sampling is then not reproducible).
   */
  readonly sendSeed?: boolean;
  /** Reuse fetched prompt routing and ask only for new rows. Default true. */
  readonly prefixReuse?: boolean;
  /** Prompts whose routing is kept for reuse. Default 4096. */
  readonly prefixCacheEntries?: number;
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
}

class RetryableError extends Error {}

const backoff = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A RolloutEngine that samples on SGLang-protocol servers and returns validated routing. */
export function createHttpRolloutEngine(options: HttpRolloutEngineOptions): HttpRolloutEngine {
  const { config } = options;
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
  const cache = new PromptRoutingCache(options.prefixCacheEntries ?? 4096);
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
    readonly decoded: DecodedGeneration[];
    readonly server: string;
  }

  /** One planned call (n samples of one prompt), retried whole on connection errors, timeouts and 5xx. */
  async function send(
    call: PlannedCall,
    requests: readonly GenerateRequest[],
    startLen: number,
  ): Promise<Sent> {
    const first = requests[call.indices[0]!]!;
    const { params } = call;
    const n = call.indices.length;
    const body = {
      input_ids: [...first.promptIds],
      ...(n === 1 ? { rid: first.id } : {}),
      sampling_params: {
        temperature: params.temperature,
        top_p: params.topP,
        top_k: params.topK === 0 ? -1 : params.topK,
        max_new_tokens: params.maxNewTokens,
        stop_token_ids: [...params.stopTokenIds],
        ...(options.sendSeed === false ? {} : { sampling_seed: call.seed }),
        ...(n === 1 ? {} : { n }),
      },
      return_logprob: true,
      return_routed_experts: true,
      ...(startLen > 0 ? { routed_experts_start_len: startLen } : {}),
      ...(options.compactRouting === true ? { routed_experts_compact: true } : {}),
    };
    const contexts: SglangRequestContext[] = call.indices.map((index) => ({
      requestId: requests[index]!.id,
      config,
      promptLength: first.promptIds.length,
      startLen,
      wantRouting: true,
      wantLogprobs: true,
    }));
    let lastReason = '';
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        counters.retries++;
        await backoff(retryBackoffMs * 2 ** (attempt - 1));
      }
      const server = await pool.acquire();
      const url = pool.urls[server]!;
      try {
        const text = await post(`${url}/generate`, body);
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          // A proxy's HTML error page or a cut-off body: the whole request is retried, never half-used.
          throw new RetryableError(
            `${url}/generate answered with a body that is not JSON: ${text.slice(0, 200)}`,
          );
        }
        for (const item of Array.isArray(json) ? json : [json]) {
          const routed = (item as { meta_info?: { routed_experts?: unknown } })?.meta_info?.routed_experts;
          if (typeof routed === 'string') counters.routingChars += routed.length;
        }
        const decoded = decodeSglangGenerateResponse(json, contexts);
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

  function toTrajectory(
    request: GenerateRequest,
    decoded: DecodedGeneration,
    server: string,
    prefix: RoutingRecord | undefined,
  ): HttpTrajectory {
    const received = decoded.routing!;
    const routing = prefix === undefined ? received : concatRoutingRecords([prefix, received]);
    validateRoutingRecord(routing, {
      numExperts: config.numExperts,
      positions: request.promptIds.length + decoded.outputIds.length - 1,
      topK: config.topK,
    });
    const version = decoded.weightVersion;
    if (
      options.allowMixedWeightVersions !== true &&
      new Set(decoded.weightVersionSpans.map((s) => s.version)).size > 1
    ) {
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
      engineLogprobs: decoded.logprobs!,
      routing,
      finishReason: decoded.finishReason,
      weightVersion: version !== undefined && /^\d+$/.test(version) ? Number(version) : weightVersion,
      server,
      serverWeightVersion: version,
      reusedRoutingRows: prefix?.positions ?? 0,
    };
  }

  /** Runs one planned call, using (and filling) the client's prompt routing cache. */
  async function runCall(call: PlannedCall, requests: readonly GenerateRequest[]): Promise<HttpTrajectory[]> {
    const first = requests[call.indices[0]!]!;
    const key = PromptRoutingCache.keyOf(first.promptIds);
    const promptLength = first.promptIds.length;
    const build = (sent: Sent, prefix: RoutingRecord | undefined) =>
      sent.decoded.map((decoded, sample) =>
        toTrajectory(requests[call.indices[sample]!]!, decoded, sent.server, prefix),
      );
    const cached = prefixReuse ? cache.get(key) : undefined;
    if (cached !== undefined) {
      const sent = await send(call, requests, promptLength);
      if (sent.decoded.every((decoded) => decoded.weightVersion === cached.weightVersion)) {
        counters.cachedPromptTokens += promptLength * call.indices.length;
        return build(sent, cached.routing);
      }
      // The server's weights moved on: the cached rows are stale. Ask again, whole.
      cache.delete(key);
    }
    const sent = await send(call, requests, 0);
    const trajectories = build(sent, undefined);
    const version = sent.decoded[0]!.weightVersion;
    if (prefixReuse && version !== undefined) {
      cache.set(key, version, sliceRoutingRecord(trajectories[0]!.routing!, 0, promptLength));
    }
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
    backendName: 'http-sglang',
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
      await options.weightSync(weights, version, pool.urls);
      weightVersion = version;
      cache.clear();
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
