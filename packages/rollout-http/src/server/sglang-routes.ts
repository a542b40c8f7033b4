import { randomInt } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import {
  DEFAULT_SAMPLING_PARAMS,
  type NamedTensors,
  type SamplingParams,
  sliceRoutingRecord,
  type Trajectory,
} from '@moerl/core';
import { routingToHiddenLayers } from '../routing/wire-routing.js';
import { encodeBase64 } from '../wire/base64.js';
import { writeIntegersLE } from '../wire/integer-array.js';
import {
  checkedPrompts,
  checkPromptStart,
  sampleRequests,
  stopTokenIdsOf,
  tokenized,
} from './engine-requests.js';
import {
  describeZodError,
  type GenerateBody,
  generateBodySchema,
  updateWeightsBodySchema,
} from './generate-schema.js';
import { HttpError, type JsonRoute } from './http-plumbing.js';
import type { RouteContext } from './route-context.js';

export interface SglangRouteOptions {
  /** Loads a checkpoint directory for `/update_weights_from_disk`; without it that endpoint answers 400. */
  readonly loadWeights: ((path: string) => Promise<NamedTensors>) | undefined;
  /** When set (a real path), `model_path` must resolve inside it; see `checkpointPathInside`. */
  readonly weightsRoot: string | undefined;
}

/**
 * SGLang's endpoints: `POST /generate` (input_ids or text, sampling params, return_logprob,
 * return_routed_experts, routed_experts_start_len, weight_version in meta_info),
 * `POST /update_weights_from_disk`, and `GET /health`, `/health_generate`, `/get_weight_version`,
 * `/get_model_info`.
 */
export function sglangRoutes(context: RouteContext, options: SglangRouteOptions): Map<string, JsonRoute> {
  const { engine } = context;
  const version = () => String(engine.stats().weightVersion);
  let nextId = 0;

  const generate = async (json: unknown): Promise<unknown> => {
    const parsed = generateBodySchema.safeParse(json);
    if (!parsed.success) throw new HttpError(400, describeZodError(parsed.error));
    context.counters.requests++;
    const body = parsed.data;
    const prompts = checkedPrompts(promptIdsOf(body, context), 'input_ids', engine.config.vocabSize);
    const n = body.sampling_params?.n ?? 1;
    const startLen = body.routed_experts_start_len ?? 0;
    checkPromptStart(startLen, prompts, 'routed_experts_start_len');
    const params = samplingParamsOf(body, engine.config.eosTokenId);
    const requests = sampleRequests(prompts, n, `moerl-${nextId++}`);
    const trajectories = await context.generate(requests, params);
    context.counters.generated += trajectories.length;
    const routingOn = body.return_routed_experts === true && context.returnRoutedExperts;
    const items = trajectories.map((trajectory, index) =>
      responseItem(trajectory, body, rid(body, index, n) ?? trajectory.id, routingOn, startLen, context),
    );
    return prompts.length === 1 && n === 1 ? items[0] : items;
  };

  const updateWeights = async (json: unknown): Promise<unknown> => {
    const parsed = updateWeightsBodySchema.safeParse(json);
    if (!parsed.success) throw new HttpError(400, describeZodError(parsed.error));
    const { loadWeights } = options;
    if (loadWeights === undefined) throw new HttpError(400, 'this server cannot load weights from disk');
    const body = parsed.data;
    const path =
      options.weightsRoot === undefined
        ? body.model_path
        : await checkpointPathInside(body.model_path, options.weightsRoot);
    // Admitted first, so maxPendingRequests bounds the checkpoints being read at once; read outside the
    // engine queue, so generation keeps running during the read and a path that does not load fails
    // before anything changes; swapped alone on the engine.
    const next = await context.exclusiveAfter(
      () => loadWeights(path),
      async (weights) => {
        const target =
          body.weight_version === undefined ? engine.stats().weightVersion + 1 : Number(body.weight_version);
        await engine.updateWeights(weights, target);
        return target;
      },
    );
    return { success: true, message: `loaded ${body.model_path}`, weight_version: String(next) };
  };

  const health = { method: 'GET', handle: () => ({}) } as const;
  return new Map<string, JsonRoute>([
    ['/generate', { method: 'POST', handle: generate }],
    ['/update_weights_from_disk', { method: 'POST', handle: updateWeights }],
    ['/health', health],
    ['/health_generate', health],
    ['/get_weight_version', { method: 'GET', handle: () => ({ weight_version: version() }) }],
    [
      '/get_model_info',
      {
        method: 'GET',
        handle: () => ({
          model_path: engine.backendName,
          is_generation: true,
          num_hidden_layers: engine.config.numLayers,
          num_experts: engine.config.numExperts,
          top_k: engine.config.topK,
          weight_version: version(),
        }),
      },
    ],
  ]);
}

/**
 * `modelPath` resolved (symbolic links followed) when that lies inside `root` (itself a resolved path), or
 * 400: without a root, anyone who reaches the port could make the server read any checkpoint it can access.
 * A path that does not resolve is answered like one outside the root unless it is inside, so the answer
 * does not tell which paths exist elsewhere.
 */
async function checkpointPathInside(modelPath: string, root: string): Promise<string> {
  let resolved: string;
  try {
    resolved = await realpath(modelPath);
  } catch (error) {
    if (!isInside(resolve(modelPath), root)) throw outsideRoot(modelPath, root);
    throw new HttpError(400, `model_path: cannot resolve ${modelPath}: ${(error as Error).message}`);
  }
  if (!isInside(resolved, root)) throw outsideRoot(modelPath, root);
  return resolved;
}

function isInside(path: string, root: string): boolean {
  const fromRoot = relative(root, path);
  return fromRoot !== '..' && !fromRoot.startsWith(`..${sep}`) && !isAbsolute(fromRoot);
}

const outsideRoot = (modelPath: string, root: string) =>
  new HttpError(400, `model_path must be inside ${root}, found ${modelPath}`);

function promptIdsOf(body: GenerateBody, context: RouteContext): (readonly number[])[] {
  const ids = body.input_ids;
  if (ids !== undefined) return typeof ids[0] === 'number' ? [ids as number[]] : (ids as number[][]);
  const texts = typeof body.text === 'string' ? [body.text] : (body.text ?? []);
  return tokenized(texts, context.tokenizer, 'text', 'input_ids');
}

function samplingParamsOf(body: GenerateBody, eosTokenId: number | undefined): SamplingParams {
  const params = body.sampling_params ?? {};
  return {
    ...DEFAULT_SAMPLING_PARAMS,
    temperature: params.temperature ?? 1,
    topP: params.top_p ?? 1,
    topK: params.top_k === undefined || params.top_k === -1 ? 0 : params.top_k,
    maxNewTokens: params.max_new_tokens ?? 128,
    stopTokenIds: stopTokenIdsOf(params.stop_token_ids, params.ignore_eos, eosTokenId),
    // SGLang draws a fresh seed when none is given: a client that sends none gets new samples each call.
    seed: params.sampling_seed ?? randomInt(2 ** 31),
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
  context: RouteContext,
) {
  const config = context.engine.config;
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
    text: context.tokenizer?.decode(outputIds) ?? '',
    output_ids: outputIds,
    meta_info: meta,
  };
}
