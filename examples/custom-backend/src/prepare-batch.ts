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

/** One validated sequence: its tokens and, in replay mode, the routing of its fed positions. */
export interface PreparedSequence {
  readonly tokens: Int32Array;
  readonly promptLength: number;
  /** prompt + response − 1: every token but the last is fed forward. */
  readonly fed: number;
  readonly replay: RoutingRecord | undefined;
}

/**
 * Checks a whole batch before any compute, with the error codes the conformance suite expects:
 * `ROUTING_MISSING` when replay finds a sequence without routing (all sequences checked first),
 * `ROUTING_SHAPE` for routing of the wrong shape, expert ids or length, `INVALID_ARGUMENT` otherwise.
 */
export function prepareBatch(
  config: ModelConfig,
  moeLayers: number,
  batch: TrainingBatch,
  mode: RoutingMode,
): PreparedSequence[] {
  if (mode !== 'free' && mode !== 'replay') {
    throw new MoerlError('INVALID_ARGUMENT', `routing must be 'free' or 'replay', found ${String(mode)}`, {
      details: { field: 'routing', found: mode },
    });
  }
  if (mode === 'replay') {
    const missing = batch.sequences.flatMap((sequence, index) =>
      sequence.routing === undefined ? [index] : [],
    );
    if (missing.length > 0) {
      throw new MoerlError(
        'ROUTING_MISSING',
        `Replay needs routing on every sequence; sequence(s) ${missing.join(', ')} have none`,
        { details: { sequences: missing } },
      );
    }
  }
  return batch.sequences.map((sequence, index) => {
    const tokens = sequenceTokens(sequence);
    const promptLength = sequence.promptIds.length;
    if (promptLength === 0) {
      throw new MoerlError('INVALID_ARGUMENT', `Sequence ${index}: promptIds must not be empty`, {
        details: { field: 'promptIds', sequence: index },
      });
    }
    const bad = tokens.findIndex((id) => id < 0 || id >= config.vocabSize);
    if (bad >= 0) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `Sequence ${index}: token ids must lie in [0, ${config.vocabSize}), found ${tokens[bad]} at position ${bad}`,
        { details: { field: 'tokens', sequence: index, position: bad, found: tokens[bad] } },
      );
    }
    const fed = tokens.length - 1;
    if (mode === 'free') return { tokens, promptLength, fed, replay: undefined };
    const record = sequence.routing!;
    try {
      validateRoutingRecord(record, { numExperts: config.numExperts, moeLayers, topK: config.topK });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new MoerlError('ROUTING_SHAPE', `Sequence ${index}: ${message}`, {
        cause: error,
        details: { sequence: index },
      });
    }
    // The final token is never fed, so routing may or may not cover it.
    if (record.positions !== fed && record.positions !== fed + 1) {
      throw new MoerlError(
        'ROUTING_SHAPE',
        `Sequence ${index}: routing must cover prompt + response − 1 = ${fed} positions (or ${fed + 1}), found ${record.positions}`,
        { details: { sequence: index, expected: fed, found: record.positions } },
      );
    }
    return {
      tokens,
      promptLength,
      fed,
      replay: record.positions === fed ? record : sliceRoutingRecord(record, 0, fed),
    };
  });
}
