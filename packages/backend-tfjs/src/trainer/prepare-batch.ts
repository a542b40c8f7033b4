import type { PreparedTrainingSequence, RoutingRecord } from '@moerl/core';
import type { PaddedBatch } from '../model/forward.js';

/** One checked sequence (core's `prepareTrainingBatch` applies the batch rules every trainer shares). */
export type PreparedSequence = PreparedTrainingSequence;

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
