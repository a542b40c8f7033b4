import { type ModelConfig, moeLayerIndices } from '../config/model-config.js';
import type { PolicyTrainerCapabilities } from '../contracts/capabilities.js';
import type { RoutingOptions, TrainingBatch } from '../contracts/policy-trainer.js';
import type { RoutingMode } from '../contracts/replay-mode.js';
import { MoerlError } from '../errors/moerl-error.js';
import { type RoutingRecord, sliceRoutingRecord, validateRoutingRecord } from '../routing/routing-record.js';
import { sequenceTokens } from './sequence-tokens.js';

/** One checked training sequence: its tokens and, in replay mode, the routing of its fed positions. */
export interface PreparedTrainingSequence {
  readonly tokens: Int32Array;
  readonly promptLength: number;
  /** prompt + response − 1: every token but the last is fed forward. */
  readonly fed: number;
  /** Exactly `fed` positions (a record that also covered the final token is cut), or undefined in free mode. */
  readonly replay: RoutingRecord | undefined;
}

/**
 * The batch rules every PolicyTrainer applies before it computes anything: non-empty prompts, token ids
 * inside the vocabulary (all of them: the final token is never fed, so no forward pass would check it), and
 * in replay mode a routing record on every sequence (`ROUTING_MISSING`, listed for all sequences at once)
 * of the model's shape covering prompt + response − 1 positions, or one more (`ROUTING_SHAPE` otherwise).
 * A record whose `weightVersion` differs from its sequence's `weightVersion` (the version of the engine
 * logprobs it is paired with) is `ROUTING_STALE`, naming both, unless `options.allowStaleRouting`; either
 * version unset skips the check. Pass the trainer call's options (or just the routing mode) and the trainer's
 * capabilities: `partialReplay` needs `routing: 'replay'` and a finite ratio ≥ 0 (`INVALID_ARGUMENT`), and is
 * `UNSUPPORTED` unless `capabilities.partialReplay`.
 */
export function prepareTrainingBatch(
  config: ModelConfig,
  batch: TrainingBatch,
  options: RoutingMode | RoutingOptions,
  capabilities?: Pick<PolicyTrainerCapabilities, 'partialReplay'>,
): PreparedTrainingSequence[] {
  const {
    routing: mode,
    allowStaleRouting = false,
    partialReplay,
  } = typeof options === 'object' && options !== null ? options : ({ routing: options } as RoutingOptions);
  if (batch === null || typeof batch !== 'object' || !Array.isArray(batch.sequences)) {
    throw new MoerlError('INVALID_ARGUMENT', 'batch.sequences must be an array of training sequences');
  }
  if (mode !== 'free' && mode !== 'replay') {
    throw new MoerlError('INVALID_ARGUMENT', `routing must be 'free' or 'replay', found ${String(mode)}`, {
      details: { found: mode },
    });
  }
  if (partialReplay !== undefined) checkPartialReplay(partialReplay, mode, capabilities);
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
  const moeLayers = moeLayerIndices(config).length;
  return sequences.map((sequence, index) => {
    const promptLength = sequence.promptIds.length;
    if (promptLength === 0) {
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
    if (mode === 'free') return { tokens, promptLength, fed, replay: undefined };
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
    const routeVersion = record.weightVersion;
    const logprobVersion = sequence.weightVersion;
    if (
      !allowStaleRouting &&
      routeVersion !== undefined &&
      logprobVersion !== undefined &&
      routeVersion !== logprobVersion
    ) {
      throw new MoerlError(
        'ROUTING_STALE',
        `Sequence ${index}: routing was recorded under weight version ${routeVersion}, its engine logprobs under version ${logprobVersion}; a route must be replayed with the logprobs of its own version (allowStaleRouting: true to replay it anyway)`,
        { details: { sequence: index, routingVersion: routeVersion, logprobVersion } },
      );
    }
    if (record.positions !== fed && record.positions !== fed + 1) {
      throw new MoerlError(
        'ROUTING_SHAPE',
        `Sequence ${index}: routing.positions is ${record.positions}; prompt + response − 1 = ${fed} (or ${fed + 1}, the final token included) expected`,
        {
          details: { sequence: index, field: 'positions', expected: [fed, fed + 1], found: record.positions },
        },
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

function checkPartialReplay(
  partialReplay: NonNullable<RoutingOptions['partialReplay']>,
  mode: RoutingMode,
  capabilities: Pick<PolicyTrainerCapabilities, 'partialReplay'> | undefined,
): void {
  const ratio = partialReplay?.minScoreRatio;
  if (typeof ratio !== 'number' || !Number.isFinite(ratio) || ratio < 0) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `partialReplay.minScoreRatio must be a finite number ≥ 0, found ${String(ratio)}`,
      { details: { field: 'partialReplay.minScoreRatio', found: ratio } },
    );
  }
  if (mode !== 'replay') {
    throw new MoerlError('INVALID_ARGUMENT', `partialReplay needs routing: 'replay', found '${mode}'`, {
      details: { field: 'partialReplay', routing: mode },
    });
  }
  if (capabilities?.partialReplay !== true) {
    throw new MoerlError(
      'UNSUPPORTED',
      'partialReplay was asked for, but this trainer does not claim the partialReplay capability',
      { details: { capability: 'partialReplay' } },
    );
  }
}
