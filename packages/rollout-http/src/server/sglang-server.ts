import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  DEFAULT_SAMPLING_PARAMS,
  type GenerateRequest,
  MoerlError,
  type NamedTensors,
  type RolloutEngine,
  type SamplingParams,
  sliceRoutingRecord,
  type Trajectory,
} from '@moerl/core';
import { routingToHiddenLayers } from '../routing/wire-routing.js';
import { encodeBase64 } from '../wire/base64.js';
import { writeIntegersLE } from '../wire/integer-array.js';
import {
  describeZodError,
  type GenerateBody,
  generateBodySchema,
  updateWeightsBodySchema,
} from './generate-schema.js';
import { SerialQueue } from './serial-queue.js';

/** Turns text into token ids and back; without one, `/generate` accepts `input_ids` only. */
export interface Tokenizer {
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
}

export interface SglangServerOptions {
  /** Any core RolloutEngine; its `config` describes the model served. */
  readonly engine: RolloutEngine;
  /** Default `127.0.0.1` (loopback only). */
  readonly host?: string;
  /** Default 0: the OS picks a free port (read it from `server.port`). */
  readonly port?: number;
  /** Largest accepted request body. Default 1 MiB; larger → 413. */
  readonly maxBodyBytes?: number;
  /** Requests accepted at once (running + waiting for the engine). Default 64; more → 503. */
  readonly maxPendingRequests?: number;
  /** Answer `return_routed_experts` (SGLang's `--enable-return-routed-experts`). Default true. */
  readonly returnRoutedExperts?: boolean;
  /** Loads a checkpoint directory for `/update_weights_from_disk`; without it that endpoint answers 400. */
  readonly loadWeights?: (path: string) => Promise<NamedTensors>;
  readonly tokenizer?: Tokenizer;
  /** Logs unexpected (500) errors. Default `console.error`. */
  readonly onError?: (error: unknown) => void;
}

export interface SglangServerStats {
  readonly requests: number;
  readonly generated: number;
  readonly badRequests: number;
  readonly rejectedBusy: number;
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

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const DEFAULT_MAX_BODY = 1024 * 1024;
// Engine and checkpoint errors caused by what the client sent (bad ids, a path that does not load).
const CLIENT_ERROR_CODES = ['INVALID_ARGUMENT', 'CHECKPOINT_INVALID', 'CONFIG_INVALID', 'IO_ERROR'] as const;

/**
 * Serves a RolloutEngine over HTTP with the SGLang `/generate` subset (input_ids or text, sampling params,
 * return_logprob, return_routed_experts, routed_experts_start_len, weight_version in meta_info), plus
 * `/health`, `/get_weight_version`, `/get_model_info` and `/update_weights_from_disk`. Engine calls run
 * one at a time, so each request's samples depend only on its own seed.
 */
export async function createSglangServer(options: SglangServerOptions): Promise<SglangServer> {
  const { engine } = options;
  const host = options.host ?? '127.0.0.1';
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const queue = new SerialQueue(options.maxPendingRequests ?? 64);
  const onError = options.onError ?? ((error: unknown) => console.error(error));
  const counters = { requests: 0, generated: 0, badRequests: 0, rejectedBusy: 0 };
  let nextId = 0;

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/health' || path === '/health_generate') return send(response, 200, {});
    if (path === '/get_weight_version') {
      return send(response, 200, { weight_version: String(engine.stats().weightVersion) });
    }
    if (path === '/get_model_info') {
      return send(response, 200, {
        model_path: engine.backendName,
        is_generation: true,
        num_hidden_layers: engine.config.numLayers,
        num_experts: engine.config.numExperts,
        top_k: engine.config.topK,
        weight_version: String(engine.stats().weightVersion),
      });
    }
    if (path !== '/generate' && path !== '/update_weights_from_disk') {
      throw new HttpError(404, `no route ${path}`);
    }
    if (request.method !== 'POST') throw new HttpError(405, `${path} takes POST, found ${request.method}`);
    const json = await readJson(request, maxBodyBytes);
    if (queue.isFull) {
      counters.rejectedBusy++;
      throw new HttpError(503, `server busy: ${queue.pending} requests pending (limit ${queue.maxPending})`);
    }
    if (path === '/update_weights_from_disk') {
      const parsed = updateWeightsBodySchema.safeParse(json);
      if (!parsed.success) throw new HttpError(400, describeZodError(parsed.error));
      const loadWeights = options.loadWeights;
      if (loadWeights === undefined) throw new HttpError(400, 'this server cannot load weights from disk');
      const body = parsed.data;
      const version = await queue.run(async () => {
        const weights = await loadWeights(body.model_path);
        const next =
          body.weight_version === undefined ? engine.stats().weightVersion + 1 : Number(body.weight_version);
        await engine.updateWeights(weights, next);
        return next;
      });
      return send(response, 200, {
        success: true,
        message: `loaded ${body.model_path}`,
        weight_version: String(version),
      });
    }
    const parsed = generateBodySchema.safeParse(json);
    if (!parsed.success) throw new HttpError(400, describeZodError(parsed.error));
    counters.requests++;
    const body = parsed.data;
    const prompts = promptsOf(body, options.tokenizer, engine.config.vocabSize);
    const n = body.sampling_params?.n ?? 1;
    const startLen = body.routed_experts_start_len ?? 0;
    const shortest = Math.min(...prompts.map((prompt) => prompt.length));
    if (startLen > shortest) {
      throw new HttpError(
        400,
        `routed_experts_start_len: must be at most the prompt length ${shortest}, found ${startLen}`,
      );
    }
    const params = samplingParamsOf(body);
    const baseId = `moerl-${nextId++}`;
    const requests: GenerateRequest[] = prompts.flatMap((promptIds, prompt) =>
      Array.from({ length: n }, (_, sample) => ({
        id: `${baseId}-${prompt}-${sample}`,
        groupId: `${baseId}-${prompt}`,
        promptIds,
      })),
    );
    const trajectories = await queue.run(() => engine.generate(requests, params));
    counters.generated += trajectories.length;
    const routingOn = body.return_routed_experts === true && options.returnRoutedExperts !== false;
    const items = trajectories.map((trajectory, index) =>
      responseItem(trajectory, body, rid(body, index, n) ?? trajectory.id, routingOn, startLen, options),
    );
    return send(response, 200, prompts.length === 1 && n === 1 ? items[0] : items);
  };

  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      const status =
        error instanceof HttpError
          ? error.status
          : CLIENT_ERROR_CODES.some((code) => MoerlError.isInstance(error, code))
            ? 400
            : 500;
      if (status === 400) counters.badRequests++;
      if (status === 500) onError(error);
      const message = error instanceof Error ? error.message : String(error);
      send(response, status, { error: { message, code: status } });
    });
  });
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    host,
    port,
    stats: () => ({ ...counters, weightVersion: engine.stats().weightVersion }),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
        server.closeAllConnections();
      }),
  };
}

function send(response: ServerResponse, status: number, body: unknown): void {
  if (response.headersSent) return;
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...(status === 503 ? { 'retry-after': '1' } : {}),
  });
  response.end(text);
}

async function readJson(request: IncomingMessage, maxBytes: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Keep draining so the client can read the 413 instead of a reset connection.
    if (size > maxBytes) tooLarge = true;
    else chunks.push(chunk);
  }
  if (tooLarge) throw new HttpError(413, `request body of ${size} bytes exceeds the limit of ${maxBytes}`);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (error) {
    throw new HttpError(400, `body is not valid JSON: ${(error as Error).message}`);
  }
}

function promptsOf(body: GenerateBody, tokenizer: Tokenizer | undefined, vocabSize: number): Int32Array[] {
  let prompts: number[][];
  if (body.input_ids !== undefined) {
    const ids = body.input_ids;
    prompts = typeof ids[0] === 'number' ? [ids as number[]] : (ids as number[][]);
  } else {
    if (tokenizer === undefined)
      throw new HttpError(400, 'text: this server has no tokenizer; send input_ids');
    const texts = typeof body.text === 'string' ? [body.text] : (body.text ?? []);
    prompts = texts.map((text) => tokenizer.encode(text));
  }
  prompts.forEach((prompt, index) => {
    const bad = prompt.find((id) => id >= vocabSize);
    if (bad !== undefined) {
      throw new HttpError(
        400,
        `input_ids[${index}]: token id ${bad} is outside the vocabulary [0, ${vocabSize})`,
      );
    }
    if (prompt.length === 0) throw new HttpError(400, `prompt ${index} is empty`);
  });
  return prompts.map((prompt) => Int32Array.from(prompt));
}

function samplingParamsOf(body: GenerateBody): SamplingParams {
  const params = body.sampling_params ?? {};
  return {
    ...DEFAULT_SAMPLING_PARAMS,
    temperature: params.temperature ?? 1,
    topP: params.top_p ?? 1,
    topK: params.top_k === undefined || params.top_k === -1 ? 0 : params.top_k,
    maxNewTokens: params.max_new_tokens ?? 128,
    stopTokenIds: params.stop_token_ids ?? [],
    seed: params.sampling_seed ?? 0,
  };
}

function rid(body: GenerateBody, index: number, n: number): string | undefined {
  if (typeof body.rid === 'string') return n === 1 ? body.rid : `${body.rid}-${index}`;
  return body.rid?.[Math.floor(index / n)];
}

function responseItem(
  trajectory: Trajectory,
  body: GenerateBody,
  id: string,
  routingOn: boolean,
  startLen: number,
  options: SglangServerOptions,
) {
  const config = options.engine.config;
  const outputIds = [...trajectory.responseIds];
  const last = outputIds.at(-1);
  const finishReason =
    trajectory.finishReason === 'stop'
      ? { type: 'stop', matched: last }
      : trajectory.finishReason === 'length'
        ? { type: 'length', length: outputIds.length }
        : { type: 'abort', message: 'aborted' };
  const meta: Record<string, unknown> = {
    id,
    finish_reason: finishReason,
    prompt_tokens: trajectory.promptIds.length,
    completion_tokens: outputIds.length,
    cached_tokens: (trajectory as { cachedPromptTokens?: number }).cachedPromptTokens ?? 0,
    weight_version: String(trajectory.weightVersion),
  };
  if (body.return_logprob === true) {
    meta.output_token_logprobs = outputIds.map((token, index) => [
      trajectory.engineLogprobs[index],
      token,
      null,
    ]);
  }
  if (routingOn && trajectory.routing !== null) {
    const rows = sliceRoutingRecord(trajectory.routing, startLen);
    const hidden = routingToHiddenLayers(rows, config);
    const compact = body.routed_experts_compact === true;
    const dtype = compact ? (config.numExperts <= 256 ? 'uint8' : 'uint16') : 'int32';
    meta.routed_experts = encodeBase64(writeIntegersLE(hidden, dtype));
    if (compact) meta.routed_experts_dtype = dtype;
  }
  return {
    text: options.tokenizer?.decode(outputIds) ?? '',
    output_ids: outputIds,
    meta_info: meta,
  };
}
