import {
  concatRoutingRecords,
  type FinishReason,
  type ModelConfig,
  MoerlError,
  type RoutingRecord,
  sliceRoutingRecord,
} from '@moerl/core';
import { routingFromWire, type WireRouting, wholeAnswerStart } from '../routing/wire-routing.js';
import { decodeBase64 } from '../wire/base64.js';
import { parseNpy } from '../wire/npy.js';
import { readFinishReason } from './finish-reason.js';
import { bodyError, isObject, type JsonObject, readTokenIds } from './json-fields.js';

/** What the client asked one vLLM choice for; `routed_experts_prompt_start` is not echoed either. */
export interface VllmChoiceContext {
  readonly requestId: string;
  readonly config: ModelConfig;
  readonly promptLength: number;
  readonly generatedLength: number;
  /** `routed_experts_prompt_start` sent with the request (0 when not sent). */
  readonly promptStart: number;
  /**
   * The client's own routing of this prompt's first positions (e.g. from an earlier response), used to
   * fill the −1 rows older vLLM sends for positions served from its prefix cache.
   */
  readonly cachedPromptRouting?: RoutingRecord;
}

function missing(context: VllmChoiceContext, field: string, why: string): MoerlError {
  return new MoerlError(
    'ROUTING_MISSING',
    `request ${context.requestId}: routing was requested but ${field} is ${why}; start vLLM with --enable-return-routed-experts (needs prefix caching), and note streamed OpenAI chunks never carry routing`,
    { details: { requestId: context.requestId, field } },
  );
}

/** Reads a rectangular nested JSON list `[rows][layers][topK]` of integers. */
function nestedToWire(value: unknown, context: VllmChoiceContext, field: string): WireRouting {
  if (!Array.isArray(value))
    throw bodyError(context.requestId, field, 'a nested list [rows][layers][k]', value);
  const rows = value.length;
  let layers = -1;
  let topK = -1;
  const values: number[] = [];
  for (const [row, rowValue] of value.entries()) {
    if (!Array.isArray(rowValue)) throw bodyError(context.requestId, `${field}[${row}]`, 'a list', rowValue);
    if (layers === -1) layers = rowValue.length;
    if (rowValue.length !== layers) {
      throw bodyError(context.requestId, `${field}[${row}]`, `a list of ${layers} layers`, rowValue);
    }
    for (const [layer, ids] of rowValue.entries()) {
      if (!Array.isArray(ids) || !ids.every((id) => Number.isInteger(id))) {
        throw bodyError(context.requestId, `${field}[${row}][${layer}]`, 'a list of integer ids', ids);
      }
      if (topK === -1) topK = ids.length;
      if (ids.length !== topK) {
        throw bodyError(context.requestId, `${field}[${row}][${layer}]`, `a list of ${topK} ids`, ids);
      }
      for (const id of ids) values.push(id);
    }
  }
  return {
    rows,
    layers: Math.max(layers, 0),
    topK: rows === 0 ? context.config.topK : Math.max(topK, 0),
    values: Int32Array.from(values),
  };
}

/** `.npy` bytes of shape (rows, num_hidden_layers, K) as wire routing. */
function npyToWire(bytes: Uint8Array, requestId: string, field: string): WireRouting {
  const array = parseNpy(bytes, `request ${requestId}: ${field}`);
  if (array.shape.length !== 3) {
    throw bodyError(requestId, field, 'a 3-d array (rows, num_hidden_layers, K)', `shape (${array.shape})`);
  }
  const [rows, layers, topK] = array.shape as [number, number, number];
  return { rows, layers, topK, values: array.values };
}

/**
 * The routing of choice `choiceIndex` of a vLLM completions or chat response, in whichever shape the server
 * sent (detected from the body, never from a version string):
 * - current: `choices[i].routed_experts` = base64 `.npy` of `(prompt + generated − 1 − start, layers, K)`
 *   over every hidden layer;
 * - short-lived split: `prompt_routed_experts` (response level, P rows) + `choices[i].routed_experts`
 *   (generated − 1 rows), nested int16 lists over MoE layers, −1 rows for prefix-cached prompt positions.
 */
export function decodeVllmChoiceRouting(
  body: unknown,
  choiceIndex: number,
  context: VllmChoiceContext,
): RoutingRecord {
  const { requestId, config } = context;
  if (!isObject(body)) throw bodyError(requestId, 'response', 'a JSON object', body);
  const choices = body.choices;
  if (!Array.isArray(choices) || !isObject(choices[choiceIndex])) {
    throw bodyError(
      requestId,
      `choices[${choiceIndex}]`,
      'an object',
      Array.isArray(choices) ? choices[choiceIndex] : choices,
    );
  }
  const choice = choices[choiceIndex] as Record<string, unknown>;
  const field = `choices[${choiceIndex}].routed_experts`;
  const raw = choice.routed_experts;
  if (raw === undefined) throw missing(context, field, 'absent');
  if (raw === null) throw missing(context, field, 'null (feature off or request aborted)');
  const fed = context.promptLength + context.generatedLength - 1;

  if (typeof raw === 'string') {
    const bytes = decodeBase64(raw, `request ${requestId}: ${field}`);
    const wire = npyToWire(bytes, requestId, field);
    // A server without routed_experts_prompt_start sends every row: read them all, keep from the start on.
    const start = wholeAnswerStart(wire.rows, fed, context.promptStart);
    const record = routingFromWire(wire, {
      requestId,
      config,
      layerAxis: 'hidden',
      rows: Math.max(0, fed - start),
      rowsExplained: `prompt ${context.promptLength} + generated ${context.generatedLength} − 1 − routed_experts_prompt_start ${context.promptStart} = ${fed - context.promptStart}`,
    });
    return start === context.promptStart ? record : sliceRoutingRecord(record, context.promptStart);
  }
  if (!('prompt_routed_experts' in body)) {
    throw bodyError(
      requestId,
      field,
      'a base64 .npy string (or nested lists with prompt_routed_experts)',
      raw,
    );
  }
  const promptValue = body.prompt_routed_experts;
  if (promptValue === null) throw missing(context, 'prompt_routed_experts', 'null');
  const prompt = fillCachedRows(nestedToWire(promptValue, context, 'prompt_routed_experts'), context);
  const promptRecord = routingFromWire(prompt, {
    requestId,
    config,
    layerAxis: 'moe',
    rows: context.promptLength,
    rowsExplained: `prompt ${context.promptLength} rows in prompt_routed_experts`,
  });
  const generated = routingFromWire(nestedToWire(raw, context, field), {
    requestId,
    config,
    layerAxis: 'moe',
    rows: Math.max(0, context.generatedLength - 1),
    rowsExplained: `generated ${context.generatedLength} − 1 rows in ${field}`,
  });
  return concatRoutingRecords([promptRecord, generated]);
}

/** Replaces −1 rows (served from vLLM's prefix cache) with the client's own rows of those positions. */
function fillCachedRows(wire: WireRouting, context: VllmChoiceContext): WireRouting {
  const width = wire.layers * wire.topK;
  const values = wire.values.slice();
  const cached = context.cachedPromptRouting;
  for (let row = 0; row < wire.rows; row++) {
    const rowValues = values.subarray(row * width, (row + 1) * width);
    if (!rowValues.some((id) => id === -1)) continue;
    if (!rowValues.every((id) => id === -1)) continue; // a partial −1 row is malformed; validation rejects it
    if (cached === undefined || row >= cached.positions || cached.moeLayers * cached.topK !== width) {
      throw missing(
        context,
        `prompt_routed_experts[${row}]`,
        '−1 (served from the prefix cache) and the client holds no routing for that position',
      );
    }
    const source = sliceRoutingRecord(cached, row, row + 1).experts;
    for (let index = 0; index < width; index++) rowValues[index] = source[index]!;
  }
  return { ...wire, values };
}

/**
 * Imports routing from the first vLLM engines, which exposed it through the Python API only: an int32 array
 * `[prompt + generated − 1, num_hidden_layers, K]` dumped as `.npy` bytes or as a nested JSON list.
 */
export function importVllmRoutingDump(
  dump: Uint8Array | unknown,
  context: Omit<VllmChoiceContext, 'promptStart' | 'cachedPromptRouting'>,
): RoutingRecord {
  const full = { ...context, promptStart: 0 };
  let wire: WireRouting;
  if (dump instanceof Uint8Array) {
    wire = npyToWire(dump, context.requestId, 'routing dump');
  } else {
    wire = nestedToWire(dump, full, 'routing dump');
  }
  const fed = context.promptLength + context.generatedLength - 1;
  return routingFromWire(wire, {
    requestId: context.requestId,
    config: context.config,
    layerAxis: 'hidden',
    rows: fed,
    rowsExplained: `prompt ${context.promptLength} + generated ${context.generatedLength} − 1 = ${fed}`,
  });
}

/**
 * The routing of a streamed vLLM completion, from its parsed chunks. Current vLLM never puts routing on
 * OpenAI stream chunks, so asking for it this way is ROUTING_MISSING; should the last chunk ever carry a
 * complete body, it is decoded like a non-streamed one.
 */
export function decodeVllmStreamRouting(
  chunks: readonly unknown[],
  choiceIndex: number,
  context: VllmChoiceContext,
): RoutingRecord {
  const last = chunks.at(-1);
  const body = isObject(last) ? last : {};
  const choices = Array.isArray(body.choices) ? body.choices : [];
  const choice = choices.find((entry) => isObject(entry) && entry.index === choiceIndex);
  if (!isObject(choice) || choice.routed_experts === undefined || choice.routed_experts === null) {
    throw missing(context, `stream chunk choices[${choiceIndex}].routed_experts`, 'absent');
  }
  return decodeVllmChoiceRouting({ ...body, choices: [choice] }, 0, context);
}

/** What the client asked one vLLM completion choice for. */
export interface VllmCompletionContext {
  readonly requestId: string;
  readonly config: ModelConfig;
  readonly promptLength: number;
  /** `routed_experts_prompt_start` sent with the request (0 when not sent). */
  readonly promptStart: number;
  readonly wantRouting: boolean;
  readonly wantLogprobs: boolean;
  /** The client's routing of the prompt's first rows, to fill −1 rows of the older split format. */
  readonly cachedPromptRouting?: RoutingRecord;
}

/** One decoded vLLM completion choice; `routing` holds rows `[promptStart, prompt + generated − 1)`. */
export interface DecodedVllmChoice {
  readonly outputIds: Int32Array;
  readonly logprobs: Float32Array | null;
  readonly finishReason: FinishReason;
  readonly routing: RoutingRecord | null;
}

const TOKEN_ID_PREFIX = 'token_id:';

/**
 * The generated ids of a choice: `token_ids` (vLLM's `return_token_ids`), else the logprob tokens spelled
 * `token_id:<id>` (`return_tokens_as_token_ids`). Text alone cannot be turned back into ids safely.
 */
function readChoiceTokenIds(choice: JsonObject, field: string, requestId: string): Int32Array {
  if (choice.token_ids !== undefined && choice.token_ids !== null) {
    return readTokenIds(choice.token_ids, requestId, `${field}.token_ids`);
  }
  const tokens = isObject(choice.logprobs) ? choice.logprobs.tokens : undefined;
  if (Array.isArray(tokens)) {
    return Int32Array.from(tokens, (token, index) => {
      const id = typeof token === 'string' ? Number(token.slice(TOKEN_ID_PREFIX.length)) : Number.NaN;
      if (
        typeof token !== 'string' ||
        !token.startsWith(TOKEN_ID_PREFIX) ||
        !Number.isSafeInteger(id) ||
        id < 0
      ) {
        throw bodyError(requestId, `${field}.logprobs.tokens[${index}]`, "'token_id:<id>'", token);
      }
      return id;
    });
  }
  throw bodyError(
    requestId,
    `${field}.token_ids`,
    'the generated token ids (send return_token_ids, or logprobs with return_tokens_as_token_ids)',
    choice.token_ids,
  );
}

function readChoiceLogprobs(choice: JsonObject, field: string, length: number, requestId: string) {
  const logprobs = isObject(choice.logprobs) ? choice.logprobs.token_logprobs : undefined;
  if (!Array.isArray(logprobs) || logprobs.length !== length) {
    throw bodyError(requestId, `${field}.logprobs.token_logprobs`, `a list of ${length} numbers`, logprobs);
  }
  return Float32Array.from(logprobs, (value, index) => {
    if (typeof value !== 'number') {
      throw bodyError(requestId, `${field}.logprobs.token_logprobs[${index}]`, 'a number', value);
    }
    return value;
  });
}

/**
 * Decodes a non-streamed vLLM `/v1/completions` response for `contexts.length` choices (prompt-major, then
 * sample, as vLLM orders them). Choices are matched by their `index` field. Routing is decoded with
 * `decodeVllmChoiceRouting` in whichever shape the server sent and returned from `promptStart` on.
 */
export function decodeVllmCompletionResponse(
  body: unknown,
  contexts: readonly VllmCompletionContext[],
): DecodedVllmChoice[] {
  const first = contexts[0]?.requestId ?? '?';
  if (!isObject(body)) throw bodyError(first, 'response', 'a JSON object', body);
  const choices = body.choices;
  if (!Array.isArray(choices) || choices.length !== contexts.length) {
    throw new MoerlError(
      'ROUTING_SHAPE',
      `request ${first}: /v1/completions returned ${Array.isArray(choices) ? choices.length : 'no'} choices, expected ${contexts.length} (prompts × n)`,
      { details: { expected: contexts.length, found: Array.isArray(choices) ? choices.length : null } },
    );
  }
  const byIndex = new Map<number, JsonObject>();
  choices.forEach((choice, position) => {
    const index = isObject(choice) && Number.isInteger(choice.index) ? (choice.index as number) : position;
    if (!isObject(choice) || byIndex.has(index) || index < 0 || index >= contexts.length) {
      throw bodyError(
        first,
        `choices[${position}]`,
        `a choice with a unique index below ${contexts.length}`,
        choice,
      );
    }
    byIndex.set(index, choice);
  });
  return contexts.map((context, index) => {
    const choice = byIndex.get(index)!;
    const field = `choices[${index}]`;
    const outputIds = readChoiceTokenIds(choice, field, context.requestId);
    const logprobs = context.wantLogprobs
      ? readChoiceLogprobs(choice, field, outputIds.length, context.requestId)
      : null;
    let routing: RoutingRecord | null = null;
    if (context.wantRouting) {
      const record = decodeVllmChoiceRouting({ ...body, choices: [choice] }, 0, {
        requestId: context.requestId,
        config: context.config,
        promptLength: context.promptLength,
        generatedLength: outputIds.length,
        promptStart: context.promptStart,
        ...(context.cachedPromptRouting === undefined
          ? {}
          : { cachedPromptRouting: context.cachedPromptRouting }),
      });
      // The older split format always sends every prompt row; keep the contract of rows from promptStart.
      const fed = context.promptLength + outputIds.length - 1;
      routing =
        record.positions === fed - context.promptStart
          ? record
          : sliceRoutingRecord(record, context.promptStart);
    }
    return { outputIds, logprobs, finishReason: readFinishReason(choice.finish_reason), routing };
  });
}
