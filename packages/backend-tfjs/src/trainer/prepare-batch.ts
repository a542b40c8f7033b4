import {
  type ModelConfig,
  MoerlError,
  type RoutingMode,
  type RoutingRecord,
  sequenceTokens,
  sliceRoutingRecord,
  type TrainingBatch,
  validateRoutingRecord,
} from '@moerl/core';
import type { PaddedBatch } from '../model/forward.js';

/** One checked sequence: its tokens, and (in replay mode) the routing of its fed positions. */
export interface PreparedSequence {
  readonly tokens: Int32Array;
  readonly promptLength: number;
  /** prompt + response − 1: every token but the last is fed forward. */
  readonly fed: number;
  readonly replay: RoutingRecord | undefined;
}

/** A micro-batch laid out for the forward pass, plus where its response tokens sit. */
export interface PaddedSequences {
  readonly batch: PaddedBatch;
  readonly replay: readonly (RoutingRecord | undefined)[];
  /** Row (sequence · length + position) predicting each response token, in sequence order. */
  readonly rows: Int32Array;
  /** The response token each of `rows` predicts. */
  readonly targets: Int32Array;
  /** Length size + 1: sequence i owns response tokens [offsets[i], offsets[i + 1]). */
  readonly offsets: Int32Array;
}

/**
 * Checks the whole batch before anything is computed (the same rules as the reference trainer): non-empty
 * prompts, token ids inside the vocabulary, and in replay mode a routing record on every sequence
 * (`ROUTING_MISSING`) of the model's shape covering prompt + response − 1 positions, or one more
 * (`ROUTING_SHAPE`; the final token's routing is then dropped, it is never fed forward).
 */
export function prepareBatch(
  config: ModelConfig,
  moeLayers: number,
  batch: TrainingBatch,
  mode: RoutingMode,
): PreparedSequence[] {
  if (batch === null || typeof batch !== 'object' || !Array.isArray(batch.sequences)) {
    throw new MoerlError('INVALID_ARGUMENT', 'batch.sequences must be an array of training sequences');
  }
  if (mode !== 'free' && mode !== 'replay') {
    throw new MoerlError('INVALID_ARGUMENT', `routing must be 'free' or 'replay', found ${String(mode)}`, {
      details: { found: mode },
    });
  }
  const { sequences } = batch;
  if (mode === 'replay') {
    const missing = sequences.flatMap((sequence, index) => (sequence.routing === undefined ? [index] : []));
    if (missing.length > 0) {
      throw new MoerlError(
        'ROUTING_MISSING',
        `Replay needs a routing record on every sequence; sequence(s) ${missing.join(', ')} have none`,
        { details: { sequences: missing } },
      );
    }
  }
  return sequences.map((sequence, index) => {
    if (sequence.promptIds.length === 0) {
      throw new MoerlError('INVALID_ARGUMENT', `Sequence ${index} has an empty prompt`, {
        details: { sequence: index },
      });
    }
    const tokens = sequenceTokens(sequence);
    const bad = tokens.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= config.vocabSize);
    if (bad >= 0) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `Sequence ${index}: token ${tokens[bad]} at position ${bad} is not a token id in [0, ${config.vocabSize})`,
        { details: { sequence: index, position: bad, found: tokens[bad], vocabSize: config.vocabSize } },
      );
    }
    const fed = tokens.length - 1;
    let replay: RoutingRecord | undefined;
    if (mode === 'replay') {
      const record = sequence.routing!;
      try {
        validateRoutingRecord(record, { numExperts: config.numExperts, moeLayers, topK: config.topK });
      } catch (error) {
        if (MoerlError.isInstance(error)) {
          throw new MoerlError('ROUTING_SHAPE', `Sequence ${index}: ${error.message}`, {
            cause: error,
            details: { sequence: index, ...error.details },
          });
        }
        throw error;
      }
      if (record.positions !== fed && record.positions !== fed + 1) {
        throw new MoerlError(
          'ROUTING_SHAPE',
          `Sequence ${index}: routing.positions is ${record.positions}; prompt + response − 1 = ${fed} (or ${fed + 1}, the final token included) expected`,
          {
            details: {
              sequence: index,
              field: 'positions',
              expected: [fed, fed + 1],
              found: record.positions,
            },
          },
        );
      }
      replay = record.positions === fed ? record : sliceRoutingRecord(record, 0, fed);
    }
    return { tokens, promptLength: sequence.promptIds.length, fed, replay };
  });
}

/** Right-pads sequences into one batch and lists the rows that predict response tokens. */
export function padSequences(sequences: readonly PreparedSequence[]): PaddedSequences {
  const size = sequences.length;
  const length = Math.max(1, ...sequences.map((sequence) => sequence.fed));
  const tokens = new Int32Array(size * length);
  const offsets = new Int32Array(size + 1);
  sequences.forEach((sequence, index) => {
    tokens.set(sequence.tokens.subarray(0, sequence.fed), index * length);
    offsets[index + 1] = offsets[index]! + sequence.tokens.length - sequence.promptLength;
  });
  const total = offsets[size]!;
  const rows = new Int32Array(total);
  const targets = new Int32Array(total);
  let out = 0;
  sequences.forEach((sequence, index) => {
    for (let position = sequence.promptLength - 1; position < sequence.fed; position++, out++) {
      rows[out] = index * length + position;
      targets[out] = sequence.tokens[position + 1]!;
    }
  });
  return {
    batch: { size, length, tokens, fed: sequences.map((sequence) => sequence.fed) },
    replay: sequences.map((sequence) => sequence.replay),
    rows,
    targets,
    offsets,
  };
}
