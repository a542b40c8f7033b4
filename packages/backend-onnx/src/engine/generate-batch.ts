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
import { pastFromPositionRows, positionKv, rowSlots, selectRows, stackSequences } from './kv-layout.js';
import { type LayerKv, MASKED, type MoeSession } from './moe-session.js';

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
  /** Where prefill time is added up, when the caller counts it. */
  readonly timing?: { prefillSeconds: number };
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

/**
 * Padded new tokens one prefill forward takes at most (rows × longest uncached part), so that a large
 * batch of long prompts does not build one huge activation; a longer prompt still goes alone.
 */
const MAX_PREFILL_TOKENS = 2048;

/** A prompt about to be prefilled: the positions its cached prefix covers, and their cache handles. */
interface PendingPrefill {
  readonly sequence: Sequence;
  readonly prompt: Int32Array;
  readonly cached: number;
  readonly cachedHandles: readonly PositionKv[];
}

/** Looks `sequence`'s prompt up in the prefix cache and takes the routing rows of what it holds. */
function matchPrefix(context: GenerateContext, sequence: Sequence): PendingPrefill {
  const { config, store } = context;
  const prompt = Int32Array.from(sequence.tokens);
  const rowWidth = context.moeLayers * config.topK;
  if (store === undefined) return { sequence, prompt, cached: 0, cachedHandles: [] };
  const hit = store.match(prompt);
  try {
    // The last prompt token is always fed: its logits give the first response token.
    const cached = Math.min(hit.length, prompt.length - 1);
    pushAll(sequence.routing, hit.routing.experts.subarray(0, cached * rowWidth));
    return { sequence, prompt, cached, cachedHandles: hit.kv.slice(0, cached) };
  } finally {
    hit.release();
  }
}

/**
 * Prefills prompts together, each only past its cached prefix, and samples their first tokens. Rows are
 * grouped by their cached length modulo DECODE_SLOT_ALIGNMENT: in a group, row r's cached past sits at slots
 * [P − cached_r, P) (P the group's longest cached prefix, so the shift is a multiple of the alignment) and
 * its new tokens at [P, P + n_r), right-padded. Every row's positions thus keep the slots' SIMD lanes they
 * have when the prompt is prefilled alone, and its results do not depend on the other rows (bit-identical).
 * Groups are cut into forwards of at most MAX_PREFILL_TOKENS padded new tokens.
 */
async function prefillAll(context: GenerateContext, sequences: readonly Sequence[]): Promise<Float32Array[]> {
  const started = performance.now();
  const pending = sequences.map((sequence) => matchPrefix(context, sequence));
  const groups = new Map<number, PendingPrefill[]>();
  for (const entry of pending) {
    const residue = entry.cached % DECODE_SLOT_ALIGNMENT;
    const group = groups.get(residue);
    if (group === undefined) groups.set(residue, [entry]);
    else group.push(entry);
  }
  const logits = new Map<Sequence, Float32Array>();
  for (const group of groups.values()) {
    let chunk: PendingPrefill[] = [];
    let longest = 0;
    for (const entry of group) {
      const fed = entry.prompt.length - entry.cached;
      if (chunk.length > 0 && (chunk.length + 1) * Math.max(longest, fed) > MAX_PREFILL_TOKENS) {
        await prefillChunk(context, chunk, logits);
        chunk = [];
        longest = 0;
      }
      chunk.push(entry);
      longest = Math.max(longest, fed);
    }
    if (chunk.length > 0) await prefillChunk(context, chunk, logits);
  }
  if (context.timing !== undefined) context.timing.prefillSeconds += (performance.now() - started) / 1000;
  return sequences.map((sequence) => logits.get(sequence)!);
}

/** One prefill forward over rows whose cached lengths agree modulo DECODE_SLOT_ALIGNMENT (see prefillAll). */
async function prefillChunk(
  context: GenerateContext,
  rows: readonly PendingPrefill[],
  logitsOf: Map<Sequence, Float32Array>,
): Promise<void> {
  const { config, store } = context;
  const batch = rows.length;
  const pastSlots = Math.max(...rows.map((row) => row.cached));
  const width = Math.max(...rows.map((row) => row.prompt.length - row.cached));
  const total = pastSlots + width;
  const inputIds = new Int32Array(batch * width);
  const positionIds = new Array<number>(batch * width);
  const attentionBias = new Float32Array(batch * width * total).fill(MASKED);
  rows.forEach(({ prompt, cached }, row) => {
    const fed = prompt.length - cached;
    const shift = pastSlots - cached;
    for (let query = 0; query < width; query++) {
      const at = row * width + query;
      // Padding repeats the last real token at its position (a valid id and position; its outputs are unused).
      inputIds[at] = prompt[cached + Math.min(query, fed - 1)]!;
      positionIds[at] = cached + Math.min(query, fed - 1);
      const bias = attentionBias.subarray(at * total, (at + 1) * total);
      bias.fill(0, shift, pastSlots + query + 1);
    }
  });
  const out = await context.session.forward({
    batch,
    sequence: width,
    inputIds,
    positionIds,
    attentionBias,
    logitRows: rows.map(({ prompt, cached }, row) => row * width + prompt.length - cached - 1),
    ...(pastSlots === 0
      ? {}
      : {
          past: pastFromPositionRows(
            rows.map(({ cached, cachedHandles }) => [
              ...new Array<undefined>(pastSlots - cached),
              ...cachedHandles,
            ]),
            config.numLayers,
            config.numKeyValueHeads,
            config.headDim,
          ),
        }),
  });
  const rowWidth = context.moeLayers * config.topK;
  const vocab = config.vocabSize;
  rows.forEach(({ sequence, prompt, cached, cachedHandles }, row) => {
    const fed = prompt.length - cached;
    pushAll(sequence.routing, out.routing.subarray(row * width * rowWidth, (row * width + fed) * rowWidth));
    // The present holds the row's past and new positions contiguously, from its shift on.
    sequence.kv = rowSlots(out.present, row, pastSlots - cached, prompt.length);
    sequence.cachedPromptTokens = cached;
    if (store !== undefined) {
      // The cached positions keep their handles; only the newly computed ones are cut out of the KV.
      const handles = [
        ...cachedHandles,
        ...range(0, fed).map((query) => positionKv(out.present, row, pastSlots + query)),
      ];
      sequence.promptHandles = handles;
      store.insert(prompt, handles, routingRecordOf(context, prompt.length, sequence.routing));
    }
    const logits = out.logits.slice(row * vocab, (row + 1) * vocab);
    logitsOf.set(sequence, logits);
    sampleNext(sequence, logits);
  });
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
 * Generates every request: the prompts are prefilled together (each minus its cached prefix), then all
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
  const firsts = new Map<string, Sequence>();
  const duplicates: { sequence: Sequence; source: Sequence }[] = [];
  for (const sequence of sequences) {
    const key = context.store === undefined ? undefined : sequence.tokens.join(',');
    const earlier = key === undefined ? undefined : firsts.get(key);
    if (earlier !== undefined) duplicates.push({ sequence, source: earlier });
    else if (key !== undefined) firsts.set(key, sequence);
  }
  const computed = context.store === undefined ? sequences : [...firsts.values()];
  const logits = await prefillAll(context, computed);
  const logitsOf = new Map(computed.map((sequence, index) => [sequence, logits[index]!]));
  for (const { sequence, source } of duplicates)
    reusePrompt(sequence, source, logitsOf.get(source)!, rowWidth);

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
