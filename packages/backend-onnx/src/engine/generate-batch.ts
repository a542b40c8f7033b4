import {
  createRandom,
  createRoutingRecord,
  type FinishReason,
  type GenerateRequest,
  type ModelConfig,
  type RoutingRecord,
  type SamplingParams,
  type SeededRandom,
  sampleToken,
} from '@moerl/core';
import type { PositionKv, PrefixStore } from '../cache/prefix-store.js';
import { pastFromPositions, positionKv, selectRows, stackSequences } from './kv-layout.js';
import { type ForwardOutput, type LayerKv, MASKED, type MoeSession } from './moe-session.js';

export interface PreparedRequest {
  readonly request: GenerateRequest;
  readonly params: SamplingParams;
  /**
   * The sampler fork: the request's `seedFork`, else its position in the generate call (as the reference
   * engine does).
   */
  readonly seedFork: number;
}

export interface GeneratedSequence {
  readonly request: GenerateRequest;
  readonly responseIds: Int32Array;
  readonly logprobs: Float32Array;
  readonly routing: RoutingRecord;
  readonly finishReason: FinishReason;
  readonly cachedPromptTokens: number;
}

interface Sequence {
  readonly prepared: PreparedRequest;
  readonly random: SeededRandom;
  readonly promptLength: number;
  readonly tokens: number[];
  readonly logprobs: number[];
  /** Routing rows of the fed positions, flattened `[position][moeLayer][k]`. */
  readonly routing: number[];
  cachedPromptTokens: number;
  finishReason?: FinishReason;
  /** Batch-1 KV after prefill, until the decode batch is formed. */
  kv?: LayerKv[];
  /** Cache handles of the prompt positions, reused when the finished sequence is stored. */
  promptHandles?: PositionKv[];
  /** The finished sequence's routing record, built once for the cache and the trajectory. */
  record?: RoutingRecord;
}

export interface GenerateContext {
  readonly config: ModelConfig;
  readonly session: MoeSession;
  readonly moeLayers: number;
  readonly store: PrefixStore | undefined;
}

// A loop, not push(...values): spreading a long prompt's routing would overflow the call stack.
function pushAll(target: number[], values: ArrayLike<number>): void {
  for (let index = 0; index < values.length; index++) target.push(values[index]!);
}

/**
 * Decode starts at a slot that is a multiple of this, in every batch, alone too. Attention sums over the
 * slots in SIMD lanes, and moving a slot by a multiple of the lane count keeps its lane (measured: shifts by
 * 8, 16, 32 are exact on AVX2, others are not). With the start aligned, a request's prompt slots sit at the
 * same columns in every batch and its decode slots move only by multiples of 16, so its logits do not
 * depend on the other rows' lengths (bit-identical; 16 leaves room for wider units than AVX2's 8 lanes).
 * The price: up to 15 masked slots per sequence, and response KV computed at shifted slots, so a later
 * prompt that reuses it from the cache (multi-turn) can differ from a fresh prefill in the last bits.
 */
export const DECODE_SLOT_ALIGNMENT = 16;

const alignedSlots = (slots: number) => Math.ceil(slots / DECODE_SLOT_ALIGNMENT) * DECODE_SLOT_ALIGNMENT;

const range = (start: number, end: number) =>
  Array.from({ length: end - start }, (_, index) => start + index);

function sampleNext(sequence: Sequence, logits: Float32Array): void {
  const { params } = sequence.prepared;
  const { token, logprob } = sampleToken(logits, params, sequence.random);
  sequence.tokens.push(token);
  sequence.logprobs.push(logprob);
  if (params.stopTokenIds.includes(token)) sequence.finishReason = 'stop';
  else if (sequence.tokens.length - sequence.promptLength >= params.maxNewTokens)
    sequence.finishReason = 'length';
}

function routingRecordOf(
  context: GenerateContext,
  positions: number,
  rows: ArrayLike<number>,
): RoutingRecord {
  const { config } = context;
  return createRoutingRecord(
    { positions, moeLayers: context.moeLayers, topK: config.topK, numExperts: config.numExperts },
    rows,
  );
}

/** Feeds `prompt[start, end)` after a past of `start` positions; logits only for the last one. */
function runChunk(
  context: GenerateContext,
  prompt: Int32Array,
  start: number,
  end: number,
  past: LayerKv[] | undefined,
): Promise<ForwardOutput> {
  const fed = end - start;
  const attentionBias = new Float32Array(fed * end);
  for (let query = 0; query < fed; query++)
    for (let slot = start + query + 1; slot < end; slot++) attentionBias[query * end + slot] = MASKED;
  return context.session.forward({
    batch: 1,
    sequence: fed,
    inputIds: prompt.subarray(start, end),
    positionIds: range(start, end),
    attentionBias,
    logitRows: [fed - 1],
    ...(past === undefined ? {} : { past }),
  });
}

/** Prefills one prompt (only the part the prefix cache does not hold) and samples its first token. */
async function prefill(context: GenerateContext, sequence: Sequence): Promise<Float32Array> {
  const { config, store } = context;
  const prompt = Int32Array.from(sequence.tokens);
  const rowWidth = context.moeLayers * config.topK;
  let cached = 0;
  let past: LayerKv[] | undefined;
  let cachedHandles: readonly PositionKv[] = [];
  if (store !== undefined) {
    const hit = store.match(prompt);
    try {
      // The last prompt token is always fed: its logits give the first response token.
      cached = Math.min(hit.length, prompt.length - 1);
      cachedHandles = hit.kv.slice(0, cached);
      if (cached > 0) {
        past = pastFromPositions(cachedHandles, config.numLayers, config.numKeyValueHeads, config.headDim);
        pushAll(sequence.routing, hit.routing.experts.subarray(0, cached * rowWidth));
      }
    } finally {
      hit.release();
    }
  }
  const total = prompt.length;
  const out = await runChunk(context, prompt, cached, total, past);
  pushAll(sequence.routing, out.routing);
  sequence.kv = out.present;
  sequence.cachedPromptTokens = cached;
  if (store !== undefined) {
    // The cached positions keep their handles; only the newly computed ones are cut out of the KV.
    const handles = [
      ...cachedHandles,
      ...range(cached, total).map((slot) => positionKv(out.present, 0, slot)),
    ];
    sequence.promptHandles = handles;
    store.insert(prompt, handles, routingRecordOf(context, total, sequence.routing));
  }
  sampleNext(sequence, out.logits);
  return out.logits;
}

/**
 * A later request of the same call with the same prompt (a GRPO group) takes everything the first one
 * computed for it: KV, routing rows and the logits of the first response token. Same computation, so the
 * result is bit-identical to feeding the prompt again; only its own sampler differs.
 */
function reusePrompt(sequence: Sequence, source: Sequence, logits: Float32Array, rowWidth: number): void {
  sequence.kv = source.kv!;
  sequence.promptHandles = source.promptHandles!;
  pushAll(sequence.routing, source.routing.slice(0, sequence.promptLength * rowWidth));
  sequence.cachedPromptTokens = sequence.promptLength;
  sampleNext(sequence, logits);
}

/** Stores a finished sequence's fed positions (all tokens but the last) in the prefix cache. */
function remember(
  context: GenerateContext,
  sequence: Sequence,
  kv: readonly LayerKv[],
  row: number,
  valid: Uint8Array,
): void {
  const fed = sequence.tokens.length - 1;
  // Valid slots hold the fed positions in order; the prompt's handles exist already.
  const handles: PositionKv[] = [...(sequence.promptHandles ?? [])];
  let skip = handles.length;
  for (let slot = 0; slot < valid.length; slot++)
    if (valid[slot] === 1) {
      if (skip > 0) skip--;
      else handles.push(positionKv(kv, row, slot));
    }
  if (handles.length !== fed) return; // cannot happen; never store misaligned KV
  sequence.record = routingRecordOf(context, fed, sequence.routing);
  context.store!.insert(Int32Array.from(sequence.tokens.slice(0, fed)), handles, sequence.record);
}

/**
 * Generates every request: each prompt is prefilled on its own (minus its cached prefix), then all
 * unfinished sequences decode together, one token per step, in a right-padded batch whose holes the
 * attention bias masks. A finished sequence leaves the batch at once, so it costs nothing afterwards.
 */
export async function generateBatch(
  context: GenerateContext,
  prepared: readonly PreparedRequest[],
): Promise<GeneratedSequence[]> {
  const { config, session } = context;
  const rowWidth = context.moeLayers * config.topK;
  const sequences: Sequence[] = prepared.map((entry) => ({
    prepared: entry,
    random: createRandom(entry.params.seed).fork(entry.seedFork),
    promptLength: entry.request.promptIds.length,
    tokens: Array.from(entry.request.promptIds),
    logprobs: [],
    routing: [],
    cachedPromptTokens: 0,
  }));
  // With the prefix cache on, identical prompts of one call are computed once (see reusePrompt).
  const computed = new Map<string, { sequence: Sequence; logits: Float32Array }>();
  for (const sequence of sequences) {
    const key = context.store === undefined ? undefined : sequence.tokens.join(',');
    const earlier = key === undefined ? undefined : computed.get(key);
    if (earlier !== undefined) {
      reusePrompt(sequence, earlier.sequence, earlier.logits, rowWidth);
      continue;
    }
    const logits = await prefill(context, sequence);
    if (key !== undefined) computed.set(key, { sequence, logits });
  }

  let active = sequences.filter((sequence) => sequence.finishReason === undefined);
  if (active.length > 0) {
    let slots = alignedSlots(Math.max(...active.map((sequence) => sequence.tokens.length - 1)));
    let kv = stackSequences(
      active.map((sequence) => sequence.kv!),
      slots,
    );
    let valid = active.map((sequence) => {
      const row = new Uint8Array(slots);
      row.fill(1, 0, sequence.tokens.length - 1);
      return row;
    });
    for (const sequence of sequences) delete sequence.kv;

    while (active.length > 0) {
      const batch = active.length;
      const total = slots + 1;
      const attentionBias = new Float32Array(batch * total);
      active.forEach((_, row) => {
        for (let slot = 0; slot < slots; slot++)
          if (valid[row]![slot] === 0) attentionBias[row * total + slot] = MASKED;
      });
      const out = await session.forward({
        batch,
        sequence: 1,
        inputIds: active.map((sequence) => sequence.tokens[sequence.tokens.length - 1]!),
        positionIds: active.map((sequence) => sequence.tokens.length - 1),
        attentionBias,
        logitRows: range(0, batch),
        past: kv,
      });
      kv = out.present;
      slots = total;
      valid = valid.map((row) => {
        const grown = new Uint8Array(total);
        grown.set(row);
        grown[total - 1] = 1;
        return grown;
      });
      const vocab = config.vocabSize;
      active.forEach((sequence, row) => {
        pushAll(sequence.routing, out.routing.subarray(row * rowWidth, (row + 1) * rowWidth));
        sampleNext(sequence, out.logits.subarray(row * vocab, (row + 1) * vocab));
      });
      const keep: number[] = [];
      active.forEach((sequence, row) => {
        if (sequence.finishReason === undefined) keep.push(row);
        else if (context.store !== undefined) remember(context, sequence, kv, row, valid[row]!);
      });
      if (keep.length < batch) {
        active = keep.map((row) => active[row]!);
        valid = keep.map((row) => valid[row]!);
        if (keep.length > 0) kv = selectRows(kv, keep);
      }
    }
  }

  return sequences.map((sequence) => ({
    request: sequence.prepared.request,
    responseIds: Int32Array.from(sequence.tokens.slice(sequence.promptLength)),
    logprobs: Float32Array.from(sequence.logprobs),
    routing: sequence.record ?? routingRecordOf(context, sequence.tokens.length - 1, sequence.routing),
    finishReason: sequence.finishReason ?? 'length',
    cachedPromptTokens: sequence.cachedPromptTokens,
  }));
}
