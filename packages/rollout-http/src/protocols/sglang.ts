import {
  type FinishReason,
  type ModelConfig,
  MoerlError,
  type RoutingRecord,
  sliceRoutingRecord,
} from '@moerl/core';
import { routingFromWire, type WireRouting, wholeAnswerStart } from '../routing/wire-routing.js';
import { decodeBase64 } from '../wire/base64.js';
import { readIntegers } from '../wire/integer-array.js';
import { readFinishReason } from './finish-reason.js';
import { bodyError, isObject, type JsonObject, readTokenIds } from './json-fields.js';

/** What the client asked one request for; SGLang does not echo the start offset, so the client keeps it. */
export interface SglangRequestContext {
  readonly requestId: string;
  readonly config: ModelConfig;
  readonly promptLength: number;
  /** `routed_experts_start_len` sent with the request (0 when not sent). */
  readonly startLen: number;
  readonly wantRouting: boolean;
  readonly wantLogprobs: boolean;
}

export interface WeightVersionSpan {
  readonly version: string;
  readonly start: number;
  readonly end: number;
}

export interface DecodedGeneration {
  readonly outputIds: Int32Array;
  /** Null unless logprobs were asked for. */
  readonly logprobs: Float32Array | null;
  readonly finishReason: FinishReason;
  readonly weightVersion: string | undefined;
  /** Spans over output tokens when the weights changed mid-request. */
  readonly weightVersionSpans: readonly WeightVersionSpan[];
  /** Rows `[startLen, prompt + output − 1)` over MoE layers; null unless routing was asked for. */
  readonly routing: RoutingRecord | null;
}

/**
 * Decodes SGLang's `routed_experts`: base64 of `[rows, num_hidden_layers, top_k]` little-endian int32, or
 * uint8 / uint16 when `routed_experts_dtype` says so. An empty string is zero rows.
 */
export function decodeSglangRoutedExperts(
  value: unknown,
  dtype: unknown,
  config: ModelConfig,
  requestId: string,
  field = 'meta_info.routed_experts',
): WireRouting {
  if (typeof value !== 'string') {
    throw bodyError(requestId, field, 'a base64 string', value);
  }
  const type = dtype === undefined || dtype === null ? 'int32' : dtype;
  if (type !== 'int32' && type !== 'uint8' && type !== 'uint16') {
    throw bodyError(requestId, 'routed_experts_dtype', "'int32', 'uint8' or 'uint16'", dtype);
  }
  const values = readIntegers(decodeBase64(value, `request ${requestId}: ${field}`), type, true, field);
  const width = config.numLayers * config.topK;
  if (width === 0 || values.length % width !== 0) {
    throw new MoerlError(
      'ROUTING_SHAPE',
      `request ${requestId}: ${field} holds ${values.length} ids, not a whole number of rows of num_hidden_layers × top_k = ${config.numLayers} × ${config.topK}`,
      { details: { requestId, field, found: values.length, rowWidth: width } },
    );
  }
  return { rows: values.length / width, layers: config.numLayers, topK: config.topK, values };
}

function routingMissing(context: SglangRequestContext, where: string): MoerlError {
  return new MoerlError(
    'ROUTING_MISSING',
    `request ${context.requestId}: routing was requested but ${where} is absent; start the server with --enable-return-routed-experts (without it SGLang silently ignores return_routed_experts)`,
    { details: { requestId: context.requestId, field: where } },
  );
}

/** SGLang moved weight versions from meta_info to sglext in newer builds; read both. */
function weightVersionOf(item: JsonObject, meta: JsonObject, requestId: string) {
  const ext = isObject(meta.sglext) ? meta.sglext : isObject(item.sglext) ? item.sglext : {};
  const version = meta.weight_version ?? ext.weight_version;
  if (
    version !== undefined &&
    version !== null &&
    typeof version !== 'string' &&
    typeof version !== 'number'
  ) {
    throw bodyError(requestId, 'meta_info.weight_version', 'a string', version);
  }
  const rawSpans = meta.weight_versions ?? ext.weight_versions;
  const spans: WeightVersionSpan[] = [];
  if (rawSpans !== undefined && rawSpans !== null) {
    if (!Array.isArray(rawSpans))
      throw bodyError(requestId, 'meta_info.weight_versions', 'an array', rawSpans);
    for (const span of rawSpans) {
      if (!isObject(span) || !Number.isInteger(span.start) || !Number.isInteger(span.end)) {
        throw bodyError(requestId, 'meta_info.weight_versions[]', '{version, start, end}', span);
      }
      spans.push({ version: String(span.version), start: span.start as number, end: span.end as number });
    }
  }
  return { weightVersion: version === undefined || version === null ? undefined : String(version), spans };
}

function readLogprobs(value: unknown, outputIds: Int32Array, requestId: string): Float32Array {
  const field = 'meta_info.output_token_logprobs';
  if (!Array.isArray(value) || value.length !== outputIds.length) {
    throw bodyError(
      requestId,
      field,
      `a list of ${outputIds.length} [logprob, token_id, text] entries`,
      value,
    );
  }
  const logprobs = new Float32Array(value.length);
  value.forEach((entry, index) => {
    if (!Array.isArray(entry) || typeof entry[0] !== 'number' || entry[1] !== outputIds[index]) {
      throw bodyError(
        requestId,
        `${field}[${index}]`,
        `[logprob, ${outputIds[index]}, text or null] matching output_ids`,
        entry,
      );
    }
    logprobs[index] = entry[0];
  });
  return logprobs;
}

/** Decodes one item of a `/generate` response (an object; batched or n > 1 requests return an array of them). */
export function decodeSglangGenerateItem(item: unknown, context: SglangRequestContext): DecodedGeneration {
  const { requestId } = context;
  if (!isObject(item)) throw bodyError(requestId, 'response', 'a JSON object', item);
  const meta = item.meta_info;
  if (!isObject(meta)) throw bodyError(requestId, 'meta_info', 'an object', meta);
  const outputIds = readTokenIds(item.output_ids, requestId, 'output_ids');
  const logprobs = context.wantLogprobs
    ? readLogprobs(meta.output_token_logprobs, outputIds, requestId)
    : null;
  const { weightVersion, spans } = weightVersionOf(item, meta, requestId);
  let routing: RoutingRecord | null = null;
  if (context.wantRouting) {
    const ext = isObject(meta.sglext) ? meta.sglext : {};
    const raw = meta.routed_experts ?? ext.routed_experts;
    if (raw === undefined || raw === null) throw routingMissing(context, 'meta_info.routed_experts');
    routing = routingFromOutput(
      raw,
      meta.routed_experts_dtype ?? ext.routed_experts_dtype,
      outputIds,
      context,
    );
  }
  return {
    outputIds,
    logprobs,
    finishReason: readFinishReason(meta.finish_reason),
    weightVersion,
    weightVersionSpans: spans,
    routing,
  };
}

function routingFromOutput(
  raw: unknown,
  dtype: unknown,
  outputIds: Int32Array,
  context: SglangRequestContext,
): RoutingRecord {
  const wire = decodeSglangRoutedExperts(raw, dtype, context.config, context.requestId);
  const fed = context.promptLength + outputIds.length - 1;
  // A server that ignores routed_experts_start_len (builds without it drop unknown fields) sends every
  // row: read them all and keep those from the start on.
  const start = wholeAnswerStart(wire.rows, fed, context.startLen);
  const record = routingFromWire(wire, {
    requestId: context.requestId,
    config: context.config,
    layerAxis: 'hidden',
    rows: Math.max(0, fed - start),
    rowsExplained: `prompt ${context.promptLength} + output ${outputIds.length} − 1 − routed_experts_start_len ${context.startLen} = ${fed - context.startLen}`,
  });
  return start === context.startLen ? record : sliceRoutingRecord(record, context.startLen);
}

/**
 * Decodes a `/generate` response for `contexts.length` items: one object for a single request, an array
 * (prompt-major, then sample) for batched or `n > 1` requests, each with its own complete routing.
 */
export function decodeSglangGenerateResponse(
  body: unknown,
  contexts: readonly SglangRequestContext[],
): DecodedGeneration[] {
  const items = Array.isArray(body) ? body : [body];
  if (items.length !== contexts.length) {
    throw new MoerlError(
      'ROUTING_SHAPE',
      `request ${contexts[0]?.requestId ?? '?'}: /generate returned ${items.length} items, expected ${contexts.length} (prompts × n)`,
      { details: { expected: contexts.length, found: items.length } },
    );
  }
  return items.map((item, index) => decodeSglangGenerateItem(item, contexts[index]!));
}

/**
 * Decodes a streamed `/generate` from its parsed SSE chunks. Routing rides only on the last chunk; output
 * ids are cumulative in each chunk unless `incrementalOutput` (SGLang's `stream_output`) is set.
 */
export function decodeSglangGenerateStream(
  chunks: readonly unknown[],
  context: SglangRequestContext,
  incrementalOutput = false,
): DecodedGeneration {
  const last = chunks.at(-1);
  if (last === undefined) throw bodyError(context.requestId, 'stream', 'at least one chunk', chunks);
  if (!incrementalOutput) return decodeSglangGenerateItem(last, context);
  const outputIds: unknown[] = [];
  for (const chunk of chunks) {
    if (isObject(chunk) && Array.isArray(chunk.output_ids)) outputIds.push(...chunk.output_ids);
  }
  const lastObject = isObject(last) ? last : {};
  return decodeSglangGenerateItem({ ...lastObject, output_ids: outputIds }, context);
}

/** The routing of a SGLang OpenAI-compatible response, per choice. */
export interface SglangOpenAiRouting {
  /** Routing of choice 0, rows `[startLen, prompt + completion − 1)` over MoE layers. */
  readonly routing: RoutingRecord;
  /**
   * One entry per choice in `index` order: choice 0's record, then for every other choice a
   * `ROUTING_MISSING` error naming it (SGLang returns routing for the first choice only).
   */
  readonly choices: readonly (RoutingRecord | MoerlError)[];
  /** The indices of the choices without routing (empty when n = 1). */
  readonly missingChoices: readonly number[];
}

/** The number of choices and the position in `choices` of the one with `index` 0. */
function choiceCount(body: JsonObject, requestId: string): number {
  const choices = body.choices;
  if (choices === undefined) return 1;
  if (!Array.isArray(choices) || choices.length === 0) {
    throw bodyError(requestId, 'choices', 'a non-empty list', choices);
  }
  const seen = new Set<number>();
  choices.forEach((choice, position) => {
    const index = isObject(choice) && Number.isInteger(choice.index) ? (choice.index as number) : position;
    if (index < 0 || index >= choices.length || seen.has(index)) {
      throw bodyError(
        requestId,
        `choices[${position}].index`,
        `a unique index below ${choices.length}`,
        isObject(choice) ? choice.index : choice,
      );
    }
    seen.add(index);
  });
  return choices.length;
}

/**
 * Decodes SGLang's OpenAI-compatible `/v1/completions` or `/v1/chat/completions` response. Routing comes
 * back at response level (`sglext.routed_experts`) for the first choice (`index` 0) only: with n > 1 that
 * routing is decoded for choice 0 and every other choice is reported as `ROUTING_MISSING`, naming it, in
 * `choices` and `missingChoices`. `completionTokens` is choice 0's completion length (not `usage`, which
 * sums every choice).
 */
export function decodeSglangOpenAiRouting(
  body: unknown,
  context: SglangRequestContext,
  completionTokens: number,
): SglangOpenAiRouting {
  const { requestId } = context;
  if (!isObject(body)) throw bodyError(requestId, 'response', 'a JSON object', body);
  const count = choiceCount(body, requestId);
  const ext = body.sglext;
  const raw = isObject(ext) ? ext.routed_experts : undefined;
  if (raw === undefined || raw === null) throw routingMissing(context, 'sglext.routed_experts');
  const dtype = isObject(ext) ? ext.routed_experts_dtype : undefined;
  const wire = decodeSglangRoutedExperts(raw, dtype, context.config, requestId, 'sglext.routed_experts');
  const fed = context.promptLength + completionTokens - 1;
  const routing = routingFromWire(wire, {
    requestId,
    config: context.config,
    layerAxis: 'hidden',
    rows: Math.max(0, fed - context.startLen),
    rowsExplained: `prompt ${context.promptLength} + choice 0's completion ${completionTokens} − 1 − start ${context.startLen} = ${fed - context.startLen}`,
  });
  const missingChoices = Array.from({ length: count - 1 }, (_, index) => index + 1);
  const choices: (RoutingRecord | MoerlError)[] = [routing];
  for (const index of missingChoices) {
    choices.push(
      new MoerlError(
        'ROUTING_MISSING',
        `request ${requestId}: choice ${index} of ${count} has no routing: SGLang's OpenAI endpoints return sglext.routed_experts for choice 0 only; use /generate (routing per sample) or one request per sample`,
        { details: { requestId, choice: index, choices: count, field: 'sglext.routed_experts' } },
      ),
    );
  }
  return { routing, choices, missingChoices };
}
