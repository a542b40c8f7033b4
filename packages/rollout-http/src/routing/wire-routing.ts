import {
  createRoutingRecord,
  type ModelConfig,
  MoerlError,
  moeLayerIndices,
  type RoutingRecord,
  routingRecordProblems,
} from '@moerl/core';

/**
 * Routing as a server sent it, before conversion: `[rows][layers][topK]` ids, with −1 allowed as a
 * "not computed here" marker (older vLLM prefix-cache rows).
 */
export interface WireRouting {
  readonly rows: number;
  readonly layers: number;
  readonly topK: number;
  readonly values: Int32Array;
}

/** What a response must contain to be accepted, and how to read its layer axis. */
export interface WireRoutingExpectation {
  /** Named in every error, so a failure points at one request. */
  readonly requestId: string;
  readonly config: ModelConfig;
  /** `hidden`: one slot per hidden layer, dense ones zero (SGLang, current vLLM); `moe`: MoE layers only. */
  readonly layerAxis: 'hidden' | 'moe';
  readonly rows: number;
  /** How the expected row count was derived, for the error message. */
  readonly rowsExplained: string;
}

function shapeError(requestId: string, message: string, details: Record<string, unknown>): MoerlError {
  return new MoerlError('ROUTING_SHAPE', `request ${requestId}: ${message}`, {
    details: { requestId, ...details },
  });
}

/**
 * Converts a server's routing into a RoutingRecord over MoE layers only, validating row count, layer and
 * top-k width, id range, repeated ids and −1 rows. Dense layers are dropped by index from the model config,
 * never by value: zero is also a valid expert id.
 *
 * Rows of zeros: with top-1 a row whose ids are all 0 is valid (expert 0 on every MoE layer). With top-k ≥ 2
 * a row of zeros repeats an id on every MoE layer, which no router produces; it is what SGLang's
 * zero-initialised host buffer holds for a position that was never captured, so it is `ROUTING_MISSING`
 * (data absent), not `ROUTING_SHAPE`. A repeated id on only some layers of a row stays `ROUTING_SHAPE`.
 */
export function routingFromWire(wire: WireRouting, expected: WireRoutingExpectation): RoutingRecord {
  const { config, requestId } = expected;
  const moeLayers = moeLayerIndices(config);
  if (wire.rows !== expected.rows) {
    throw shapeError(requestId, `routing has ${wire.rows} rows, expected ${expected.rowsExplained}`, {
      expected: expected.rows,
      found: wire.rows,
      field: 'rows',
    });
  }
  const wantLayers = expected.layerAxis === 'hidden' ? config.numLayers : moeLayers.length;
  if (wire.layers !== wantLayers) {
    const what = expected.layerAxis === 'hidden' ? 'num_hidden_layers' : 'MoE layers';
    throw shapeError(
      requestId,
      `routing has ${wire.layers} layers per row, expected ${wantLayers} (${what})`,
      {
        expected: wantLayers,
        found: wire.layers,
        field: 'layers',
      },
    );
  }
  if (wire.topK !== config.topK) {
    throw shapeError(requestId, `routing has top-${wire.topK} per layer, expected top-${config.topK}`, {
      expected: config.topK,
      found: wire.topK,
      field: 'topK',
    });
  }
  if (wire.values.length !== wire.rows * wire.layers * wire.topK) {
    throw shapeError(
      requestId,
      `routing holds ${wire.values.length} ids; ${wire.rows} × ${wire.layers} × ${wire.topK} needs ${wire.rows * wire.layers * wire.topK}`,
      { field: 'values' },
    );
  }
  const keep = expected.layerAxis === 'hidden' ? moeLayers : moeLayers.map((_, index) => index);
  const topK = config.topK;
  const rowWidth = keep.length * topK;
  const experts = new Int32Array(wire.rows * rowWidth);
  for (let row = 0; row < wire.rows; row++) {
    let allZero = true;
    let anyMissing = false;
    for (let slot = 0; slot < keep.length; slot++) {
      const source = (row * wire.layers + keep[slot]!) * topK;
      for (let k = 0; k < topK; k++) {
        const id = wire.values[source + k]!;
        if (id === -1) anyMissing = true;
        else if (id < 0 || id >= config.numExperts) {
          throw shapeError(
            requestId,
            `row ${row}, layer ${keep[slot]}: expert id ${id} is outside [0, ${config.numExperts})`,
            { row, layer: keep[slot], found: id, numExperts: config.numExperts },
          );
        }
        if (id !== 0) allZero = false;
        experts[row * rowWidth + slot * topK + k] = id;
      }
    }
    if (anyMissing) {
      throw shapeError(requestId, `row ${row} holds −1 (routing not computed) where the request needed it`, {
        row,
      });
    }
    if (allZero && rowWidth > 0 && topK >= 2) {
      throw new MoerlError(
        'ROUTING_MISSING',
        `request ${requestId}: row ${row} is all zeros on every MoE layer with top-${topK} (an id repeated on every layer): the server never captured routing for that position (SGLang's host buffer starts zeroed)`,
        { details: { requestId, row, field: 'rows' } },
      );
    }
  }
  const record = createRoutingRecord(
    { positions: wire.rows, moeLayers: keep.length, topK, numExperts: config.numExperts },
    experts,
  );
  const problems = routingRecordProblems(record, { numExperts: config.numExperts });
  if (problems.length > 0) {
    throw shapeError(requestId, `invalid routing:\n  - ${problems.join('\n  - ')}`, { problems });
  }
  return record;
}

/**
 * Expands a MoE-only record to SGLang's `[rows][num_hidden_layers][topK]` layout with dense layers as zeros
 * (what our server sends so that any SGLang client can read it).
 */
export function routingToHiddenLayers(record: RoutingRecord, config: ModelConfig): Uint16Array {
  const moeLayers = moeLayerIndices(config);
  const out = new Uint16Array(record.positions * config.numLayers * record.topK);
  for (let row = 0; row < record.positions; row++) {
    for (let slot = 0; slot < moeLayers.length; slot++) {
      const source = (row * record.moeLayers + slot) * record.topK;
      const target = (row * config.numLayers + moeLayers[slot]!) * record.topK;
      for (let k = 0; k < record.topK; k++) out[target + k] = record.experts[source + k]!;
    }
  }
  return out;
}

/**
 * The first row a response holds: `start` as asked, or 0 when it holds all `fed` rows because the server
 * ignored the start field (SGLang and vLLM builds without it drop unknown fields). Any other count is left
 * to `routingFromWire` to refuse.
 */
export function wholeAnswerStart(rows: number, fed: number, start: number): number {
  return start > 0 && rows === fed ? 0 : start;
}
