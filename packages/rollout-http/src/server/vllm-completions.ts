import { randomInt, randomUUID } from 'node:crypto';
import { DEFAULT_SAMPLING_PARAMS, type SamplingParams, type Trajectory } from '@moerl/core';
import {
  checkedPrompts,
  checkPromptStart,
  sampleRequests,
  stopTokenIdsOf,
  tokenized,
} from './engine-requests.js';
import { describeZodError } from './generate-schema.js';
import { HttpError, type JsonRoute } from './http-plumbing.js';
import type { RouteContext } from './route-context.js';
import { type CompletionsBody, completionsBodySchema } from './vllm-completions-schema.js';
import { encodeVllmRoutedExperts } from './vllm-routed-experts.js';

export interface VllmRouteOptions {
  /** The id `/v1/models` lists and responses name when the request gives no `model`. */
  readonly modelName: string;
}

/** vLLM's default `max_tokens` for completions. */
const DEFAULT_MAX_TOKENS = 16;

/**
 * vLLM's OpenAI completions dialect with routed experts: `POST /v1/completions` (non-streaming; every
 * choice carries `routed_experts` as base64 `.npy`, or null when the server runs without routing) and
 * `GET /v1/models`. A call is seeded with the body's `seed` (a fresh random one when absent, as in vLLM);
 * choice j (prompt-major) draws fork j of it, so a client reproduces a call in-process with the same seed,
 * whether the server ran it alone or merged into one engine batch with other calls (`RequestBatcher`).
 */
export function vllmCompletionRoutes(
  context: RouteContext,
  options: VllmRouteOptions,
): Map<string, JsonRoute> {
  const { engine } = context;
  const created = Math.floor(Date.now() / 1000);

  const completions = async (json: unknown): Promise<unknown> => {
    const parsed = completionsBodySchema.safeParse(json);
    if (!parsed.success) throw new HttpError(400, describeZodError(parsed.error));
    const body = parsed.data;
    if (body.stream === true) {
      throw new HttpError(
        400,
        'stream: only false is supported; streamed OpenAI chunks never carry routed_experts, so a stream cannot replay routing',
      );
    }
    if (body.logprobs !== undefined && body.logprobs !== null && body.logprobs !== 0) {
      throw new HttpError(
        400,
        `logprobs: only 0 (the sampled token's logprob, no alternatives) is supported, found ${body.logprobs}`,
      );
    }
    context.counters.requests++;
    const prompts = checkedPrompts(promptIdsOf(body, context), 'prompt', engine.config.vocabSize);
    const promptStart = body.routed_experts_prompt_start ?? 0;
    checkPromptStart(promptStart, prompts, 'routed_experts_prompt_start');
    const n = body.n ?? 1;
    const id = `cmpl-${randomUUID().replaceAll('-', '')}`;
    const params = samplingParamsOf(body, engine.config.eosTokenId);
    const requests = sampleRequests(prompts, n, id);
    const trajectories = await context.generate(requests, params);
    context.counters.generated += trajectories.length;
    const choices = trajectories.map((trajectory, index) => choiceOf(trajectory, index, body, promptStart));
    const promptTokens = prompts.reduce((sum, prompt) => sum + prompt.length, 0);
    const completionTokens = trajectories.reduce((sum, trajectory) => sum + trajectory.responseIds.length, 0);
    return {
      id,
      object: 'text_completion',
      created: Math.floor(Date.now() / 1000),
      model: body.model ?? options.modelName,
      choices,
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens,
      },
    };
  };

  const choiceOf = (trajectory: Trajectory, index: number, body: CompletionsBody, promptStart: number) => {
    const tokenIds = [...trajectory.responseIds];
    const { tokenizer } = context;
    // vLLM sends null routing for an aborted sequence, as when the feature is off.
    const routing =
      context.returnRoutedExperts && trajectory.finishReason !== 'abort' ? trajectory.routing : null;
    return {
      index,
      text: tokenizer?.decode(tokenIds) ?? '',
      logprobs: body.logprobs === 0 ? logprobsOf(trajectory, body.return_tokens_as_token_ids === true) : null,
      finish_reason: trajectory.finishReason,
      // vLLM names the stop token id that ended the sequence; the engine keeps it as the last token.
      stop_reason: trajectory.finishReason === 'stop' ? (tokenIds.at(-1) ?? null) : null,
      ...(body.return_token_ids === true
        ? { token_ids: tokenIds, prompt_token_ids: [...trajectory.promptIds] }
        : {}),
      routed_experts: routing === null ? null : encodeVllmRoutedExperts(routing, promptStart, engine.config),
    };
  };

  /** OpenAI's completion logprobs with no alternatives; tokens spelled by the tokenizer or as `token_id:<id>`. */
  const logprobsOf = (trajectory: Trajectory, asTokenIds: boolean) => {
    const { tokenizer } = context;
    const tokens = [...trajectory.responseIds].map((id) =>
      asTokenIds || tokenizer === undefined ? `token_id:${id}` : tokenizer.decode([id]),
    );
    const textOffset: number[] = [];
    let offset = 0;
    for (const token of tokens) {
      textOffset.push(offset);
      offset += token.length;
    }
    return {
      tokens,
      token_logprobs: [...trajectory.engineLogprobs],
      text_offset: textOffset,
      top_logprobs: null,
    };
  };

  return new Map<string, JsonRoute>([
    ['/v1/completions', { method: 'POST', handle: completions }],
    [
      '/v1/models',
      {
        method: 'GET',
        handle: () => ({
          object: 'list',
          data: [{ id: options.modelName, object: 'model', created, owned_by: 'moerl' }],
        }),
      },
    ],
  ]);
}

function promptIdsOf(body: CompletionsBody, context: RouteContext): (readonly number[])[] {
  const { prompt } = body;
  if (typeof prompt === 'string') return tokenized([prompt], context.tokenizer, 'prompt', 'token ids');
  if (typeof prompt[0] === 'string') {
    return tokenized(prompt as string[], context.tokenizer, 'prompt', 'token ids');
  }
  return typeof prompt[0] === 'number' ? [prompt as number[]] : (prompt as number[][]);
}

function samplingParamsOf(body: CompletionsBody, eosTokenId: number | undefined): SamplingParams {
  return {
    ...DEFAULT_SAMPLING_PARAMS,
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    topK: body.top_k === undefined || body.top_k === null || body.top_k === -1 ? 0 : body.top_k,
    maxNewTokens: body.max_tokens ?? DEFAULT_MAX_TOKENS,
    stopTokenIds: stopTokenIdsOf(body.stop_token_ids, body.ignore_eos, eosTokenId),
    // vLLM draws a fresh seed when none is given: a client that sends none gets new samples each call.
    seed: body.seed ?? randomInt(2 ** 31),
  };
}
