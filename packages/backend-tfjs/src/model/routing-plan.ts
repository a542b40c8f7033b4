import type { RoutingRecord } from '@moerl/core';

/** Which rows of a padded batch go to which experts in one MoE layer. */
export interface LayerRoutingPlan {
  /** `[rows × numExperts]`: 1 where the row uses the expert. Padding rows are all zero. */
  readonly mask: Float32Array;
  /** `[rows]`: 1 for padding rows (so a renormalising denominator never is 0), else 0. */
  readonly padding: Float32Array;
  /** The rows each expert serves, ascending. */
  readonly expertRows: readonly Int32Array[];
  /** Expert slots taken from a replay record, and how many of them partial replay gave to the trainer. */
  readonly replayedSlots: number;
  readonly replacedSlots: number;
}

export interface PaddedLayout {
  /** Sequences (batch rows). */
  readonly size: number;
  /** Padded length. */
  readonly length: number;
  /** Real (fed) positions of each sequence; the rest is padding. */
  readonly fed: readonly number[];
}

/**
 * The top-`k` of `values[offset, offset + count)`, largest first, ties to the lower index: the order of the
 * reference's `topK`, so free routing agrees with it whenever the probabilities agree. One pass that keeps
 * the best k so far in order (a router row is read once, not k times); a row holding NaN, where "largest"
 * means what the reference's selection makes of it, takes that selection.
 */
export function topKIndices(
  values: ArrayLike<number>,
  offset: number,
  count: number,
  k: number,
  out: Int32Array,
): void {
  let filled = 0;
  for (let index = 0; index < count; index++) {
    const value = values[offset + index]!;
    if (Number.isNaN(value)) {
      selectTopK(values, offset, count, k, out);
      return;
    }
    if (filled === k && !(value > values[offset + out[k - 1]!]!)) continue;
    // Insert after every kept value at least as large (ties keep the lower index first).
    let at = filled < k ? filled++ : k - 1;
    while (at > 0 && value > values[offset + out[at - 1]!]!) {
      out[at] = out[at - 1]!;
      at--;
    }
    out[at] = index;
  }
  out.fill(-1, filled, k);
}

/** k rounds, each taking the largest value not yet taken (the first on ties): the reference's order. */
function selectTopK(
  values: ArrayLike<number>,
  offset: number,
  count: number,
  k: number,
  out: Int32Array,
): void {
  for (let round = 0; round < k; round++) {
    let best = -1;
    for (let index = 0; index < count; index++) {
      let taken = false;
      for (let previous = 0; previous < round; previous++) if (out[previous] === index) taken = true;
      if (taken) continue;
      if (best === -1 || values[offset + index]! > values[offset + best]!) best = index;
    }
    out[round] = best;
  }
}

/**
 * Partial replay of one row (prime-rl): keeps a replayed expert when `probabilities[offset + expert]` is at
 * least `minScoreRatio` × the trainer's k-th largest probability; every other slot takes the trainer's best
 * expert (its top-k order) that is not yet in the row. Overwrites `ids` in place and returns how many slots
 * it replaced. `trainerTop` is scratch of length k.
 */
export function mixReplayedRow(
  ids: Int32Array,
  probabilities: ArrayLike<number>,
  offset: number,
  numExperts: number,
  minScoreRatio: number,
  trainerTop: Int32Array,
): number {
  const k = ids.length;
  topKIndices(probabilities, offset, numExperts, k, trainerTop);
  const threshold = minScoreRatio * probabilities[offset + trainerTop[k - 1]!]!;
  const keep = Array.from(ids, (expert) => probabilities[offset + expert]! >= threshold);
  let replaced = 0;
  let next = 0;
  for (let slot = 0; slot < k; slot++) {
    if (keep[slot]) continue;
    // The trainer's best not-yet-chosen expert: its top-k always holds one (at most k − 1 others are taken).
    while (ids.some((expert, index) => expert === trainerTop[next] && (keep[index] || index < slot))) next++;
    ids[slot] = trainerTop[next]!;
    next++;
    replaced++;
  }
  return replaced;
}

/** True when some real position of the layout has no replayed experts (so the router must choose). */
export function needsFreeRouting(
  layout: PaddedLayout,
  replay: readonly (RoutingRecord | undefined)[],
): boolean {
  return layout.fed.some((fed, sequence) => (replay[sequence]?.positions ?? 0) < fed);
}

/**
 * Chooses the experts of every real row of one MoE layer: the replayed ids where a record covers the
 * position, the router's top-k of `probabilities` (`[rows × numExperts]`) elsewhere. Writes the choice
 * into `chosen` (`[sequence][position][moeLayer][k]` over the padded length) and returns the plan.
 */
export function planLayerRouting(options: {
  readonly layout: PaddedLayout;
  readonly numExperts: number;
  readonly topK: number;
  readonly moeLayers: number;
  readonly ordinal: number;
  readonly replay: readonly (RoutingRecord | undefined)[];
  readonly probabilities: Float32Array | undefined;
  readonly chosen: Int32Array;
  /** Partial replay's ratio (needs `probabilities`); undefined replays every id as recorded. */
  readonly minScoreRatio?: number;
}): LayerRoutingPlan {
  const { layout, numExperts, topK, moeLayers, ordinal, replay, probabilities, chosen, minScoreRatio } =
    options;
  const trainerTop = new Int32Array(topK);
  let replayedSlots = 0;
  let replacedSlots = 0;
  const rows = layout.size * layout.length;
  const mask = new Float32Array(rows * numExperts);
  const padding = new Float32Array(rows);
  const counts = new Int32Array(numExperts);
  const ids = new Int32Array(topK);
  for (let sequence = 0; sequence < layout.size; sequence++) {
    const record = replay[sequence];
    for (let position = 0; position < layout.length; position++) {
      const row = sequence * layout.length + position;
      if (position >= layout.fed[sequence]!) {
        padding[row] = 1;
        continue;
      }
      if (record !== undefined && position < record.positions) {
        const start = (position * record.moeLayers + ordinal) * record.topK;
        for (let k = 0; k < topK; k++) ids[k] = record.experts[start + k]!;
        replayedSlots += topK;
        if (minScoreRatio !== undefined) {
          if (probabilities === undefined) throw new Error('internal: partial replay without probabilities');
          replacedSlots += mixReplayedRow(
            ids,
            probabilities,
            row * numExperts,
            numExperts,
            minScoreRatio,
            trainerTop,
          );
        }
      } else {
        if (probabilities === undefined) throw new Error('internal: free routing without probabilities');
        topKIndices(probabilities, row * numExperts, numExperts, topK, ids);
      }
      const slot = (row * moeLayers + ordinal) * topK;
      for (let k = 0; k < topK; k++) {
        const expert = ids[k]!;
        chosen[slot + k] = expert;
        // An expert a row names twice (a malformed record) serves the row once.
        if (mask[row * numExperts + expert] === 1) continue;
        mask[row * numExperts + expert] = 1;
        counts[expert] = counts[expert]! + 1;
      }
    }
  }
  // Each expert's rows, ascending: the rows in order, each under the experts it chose (once each).
  const expertRows = Array.from({ length: numExperts }, (_, expert) => new Int32Array(counts[expert]!));
  const filled = new Int32Array(numExperts);
  for (let sequence = 0; sequence < layout.size; sequence++) {
    for (let position = 0; position < layout.fed[sequence]!; position++) {
      const row = sequence * layout.length + position;
      const slot = (row * moeLayers + ordinal) * topK;
      for (let k = 0; k < topK; k++) {
        const expert = chosen[slot + k]!;
        const rowsOf = expertRows[expert]!;
        if (filled[expert]! > 0 && rowsOf[filled[expert]! - 1] === row) continue;
        rowsOf[filled[expert]!] = row;
        filled[expert] = filled[expert]! + 1;
      }
    }
  }
  return { mask, padding, expertRows, replayedSlots, replacedSlots };
}
