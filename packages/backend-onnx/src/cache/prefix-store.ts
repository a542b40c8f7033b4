import type { RoutingRecord } from '@moerl/core';

/** One position's keys and values for every layer: `[layer][key | value][kvHead][headDim]`. */
export interface PositionKv {
  readonly bytes: number;
  readonly data: Float32Array;
}

export interface PrefixMatch {
  /** How many leading tokens are cached. */
  readonly length: number;
  /** One handle per cached position. */
  readonly kv: readonly PositionKv[];
  /** Routing of the cached positions (`positions === length`). */
  readonly routing: RoutingRecord;
  /** Unlocks the matched nodes; call once the KV has been copied. */
  release(): void;
}

export interface PrefixStoreStats {
  readonly hits: number;
  readonly misses: number;
  readonly hitTokens: number;
  readonly requestedTokens: number;
  readonly kvBytes: number;
  readonly evictions: number;
}

/**
 * The seam between the engine and its prefix cache: the subset of @moerl/router-cache's `RouterCache` the
 * engine uses. Only positions that were fed through the model are stored (KV and routing exist for them).
 */
export interface PrefixStore {
  match(tokens: Int32Array): PrefixMatch;
  insert(tokens: Int32Array, kv: readonly PositionKv[], routing: RoutingRecord): void;
  setWeightVersion(version: number): void;
  stats(): PrefixStoreStats;
}

export interface PrefixStoreOptions {
  readonly moeLayers: number;
  readonly topK: number;
  readonly numExperts: number;
  readonly budgetBytes: number;
}
