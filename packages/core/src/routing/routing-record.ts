import { MoerlError } from '../errors/moerl-error.js';

/** Expert ids: one byte per choice when numExperts ≤ 256, two otherwise. */
export type ExpertIdArray = Uint8Array | Uint16Array;

/**
 * The experts chosen for every position fed through a model, laid out `[position][moeLayer][k]`
 * (the layout SGLang, vLLM and verl use). The layer axis counts MoE layers only.
 *
 * For a trajectory, positions cover prompt + response − 1 tokens: the final sampled token is never fed
 * forward, so it has no routing.
 */
export interface RoutingRecord {
  readonly positions: number;
  readonly moeLayers: number;
  readonly topK: number;
  readonly experts: ExpertIdArray;
  /**
   * The weight version of the model that chose these experts, when known. Engines stamp it (it equals the
   * trajectory's `weightVersion`); a trainer replaying the record refuses to pair it with engine logprobs of
   * another version (`ROUTING_STALE`, see `prepareTrainingBatch`).
   */
  readonly weightVersion?: number;
}

export interface RoutingShape {
  readonly positions: number;
  readonly moeLayers: number;
  readonly topK: number;
}

/** The array type a record of `numExperts` experts uses. */
export function expertIdArrayFor(numExperts: number, length: number): ExpertIdArray {
  return numExperts <= 256 ? new Uint8Array(length) : new Uint16Array(length);
}

/** A record of the given shape, filled with `experts` (copied) or zeros. */
export function createRoutingRecord(
  shape: RoutingShape & { readonly numExperts: number; readonly weightVersion?: number },
  experts?: ArrayLike<number>,
): RoutingRecord {
  const length = shape.positions * shape.moeLayers * shape.topK;
  const array = expertIdArrayFor(shape.numExperts, length);
  if (experts !== undefined) {
    if (experts.length !== length) {
      throw new MoerlError(
        'ROUTING_SHAPE',
        `Routing record of ${shape.positions} positions × ${shape.moeLayers} MoE layers × top-${shape.topK} needs ${length} expert ids, found ${experts.length}`,
        { details: { expected: length, found: experts.length } },
      );
    }
    for (let index = 0; index < length; index++) {
      const id = experts[index]!;
      if (!Number.isInteger(id) || id < 0 || id >= shape.numExperts) {
        throw new MoerlError(
          'ROUTING_SHAPE',
          `Expert id ${id} at index ${index} is outside [0, ${shape.numExperts})`,
          { details: { index, found: id, numExperts: shape.numExperts } },
        );
      }
      array[index] = id;
    }
  }
  return {
    positions: shape.positions,
    moeLayers: shape.moeLayers,
    topK: shape.topK,
    experts: array,
    ...versionOf(shape.weightVersion),
  };
}

function versionOf(weightVersion: number | undefined): { weightVersion?: number } {
  return weightVersion === undefined ? {} : { weightVersion };
}

export interface RoutingExpectation {
  readonly numExperts: number;
  readonly moeLayers?: number;
  readonly topK?: number;
  readonly positions?: number;
}

function describeShape(shape: RoutingShape): string {
  return `[${shape.positions} positions][${shape.moeLayers} layers][top-${shape.topK}]`;
}

/** Lists what is wrong with a record (empty when valid); stops after `limit` problems. */
export function routingRecordProblems(
  record: RoutingRecord,
  expected: RoutingExpectation,
  limit = 10,
): string[] {
  const problems: string[] = [];
  if (record === null || typeof record !== 'object')
    return [`expected a RoutingRecord, found ${String(record)}`];
  for (const size of ['positions', 'moeLayers', 'topK'] as const) {
    const value = record[size];
    if (!Number.isInteger(value) || value < 0)
      problems.push(`${size} must be a non-negative integer, found ${value}`);
    const wanted = expected[size];
    if (wanted !== undefined && value !== wanted) problems.push(`${size} must be ${wanted}, found ${value}`);
  }
  const version = record.weightVersion;
  if (version !== undefined && (!Number.isInteger(version) || version < 0))
    problems.push(`weightVersion must be a non-negative integer when set, found ${version}`);
  if (!(record.experts instanceof Uint8Array || record.experts instanceof Uint16Array)) {
    problems.push('experts must be a Uint8Array or Uint16Array');
    return problems;
  }
  if (problems.length > 0) return problems;
  const length = record.positions * record.moeLayers * record.topK;
  if (record.experts.length !== length) {
    problems.push(
      `experts holds ${record.experts.length} ids; shape ${describeShape(record)} needs ${length}`,
    );
    return problems;
  }
  const { topK } = record;
  const experts = record.experts;
  // One stamp per row instead of comparing every pair: validation runs on every insert of a prefix cache.
  const numExperts = expected.numExperts;
  const seen = new Uint32Array(numExperts);
  let stamp = 0;
  for (let start = 0; start < length; start += topK) {
    stamp++;
    for (let k = 0; k < topK; k++) {
      const id = experts[start + k]!;
      if (id < numExperts && seen[id] !== stamp) {
        seen[id] = stamp;
        continue;
      }
      const position = Math.floor(start / (record.moeLayers * topK));
      const layer = (start / topK) % record.moeLayers;
      problems.push(
        id >= numExperts
          ? `position ${position}, layer ${layer}: expert id ${id} is outside [0, ${numExperts})`
          : `position ${position}, layer ${layer}: expert ${id} chosen twice`,
      );
      if (problems.length >= limit) return problems;
    }
  }
  return problems;
}

/** Throws `ROUTING_SHAPE` unless the record is well formed and matches what the model expects. */
export function validateRoutingRecord(record: RoutingRecord, expected: RoutingExpectation): void {
  const problems = routingRecordProblems(record, expected);
  if (problems.length > 0) {
    throw new MoerlError('ROUTING_SHAPE', `Invalid routing record:\n  - ${problems.join('\n  - ')}`, {
      details: { problems },
    });
  }
}

/** The experts of positions [start, end) as a new record (copied, so the source can be freed); keeps the weight version. */
export function sliceRoutingRecord(
  record: RoutingRecord,
  start: number,
  end: number = record.positions,
): RoutingRecord {
  if (
    !Number.isInteger(start) ||
    !Number.isInteger(end) ||
    start < 0 ||
    end > record.positions ||
    start > end
  ) {
    throw new MoerlError(
      'ROUTING_SHAPE',
      `Cannot slice positions [${start}, ${end}) of a routing record with ${record.positions} positions`,
      { details: { start, end, positions: record.positions } },
    );
  }
  const row = record.moeLayers * record.topK;
  return {
    ...shapeOf(record),
    positions: end - start,
    experts: record.experts.slice(start * row, end * row),
    ...versionOf(record.weightVersion),
  };
}

/**
 * Joins records along the position axis; all must share moeLayers and topK. Records that carry a weight
 * version must carry the same one (a route from another version is stale: `ROUTING_STALE`); the result
 * carries it when every record does, and no version when some record has none (unknown).
 */
export function concatRoutingRecords(records: readonly RoutingRecord[]): RoutingRecord {
  const first = records[0];
  if (first === undefined) {
    throw new MoerlError('ROUTING_SHAPE', 'concatRoutingRecords needs at least one record');
  }
  let positions = 0;
  let wide = false;
  for (const [index, record] of records.entries()) {
    if (record.moeLayers !== first.moeLayers || record.topK !== first.topK) {
      throw new MoerlError(
        'ROUTING_SHAPE',
        `Record ${index} has ${record.moeLayers} layers × top-${record.topK}; record 0 has ${first.moeLayers} × top-${first.topK}`,
        { details: { index } },
      );
    }
    positions += record.positions;
    wide ||= record.experts instanceof Uint16Array;
  }
  const versioned = records.flatMap((record, index) =>
    record.weightVersion === undefined ? [] : [{ index, version: record.weightVersion }],
  );
  const other = versioned.find(({ version }) => version !== versioned[0]!.version);
  if (other !== undefined) {
    const base = versioned[0]!;
    throw new MoerlError(
      'ROUTING_STALE',
      `Cannot join routing of different weight versions: record ${base.index} has version ${base.version}, record ${other.index} has version ${other.version}`,
      { details: { versions: records.map((record) => record.weightVersion ?? null) } },
    );
  }
  const experts = wide
    ? new Uint16Array(positions * first.moeLayers * first.topK)
    : new Uint8Array(positions * first.moeLayers * first.topK);
  let offset = 0;
  for (const record of records) {
    experts.set(record.experts, offset);
    offset += record.experts.length;
  }
  const version = versioned.length === records.length ? versioned[0]!.version : undefined;
  return { ...shapeOf(first), positions, experts, ...versionOf(version) };
}

function shapeOf(record: RoutingRecord): RoutingShape {
  return { positions: record.positions, moeLayers: record.moeLayers, topK: record.topK };
}

/** The `topK` expert ids of one position and layer (a view, not a copy). */
export function routingRow(record: RoutingRecord, position: number, layer: number): ExpertIdArray {
  const start = (position * record.moeLayers + layer) * record.topK;
  return record.experts.subarray(start, start + record.topK);
}
