import type { RoutingRecord } from '@moerl/core';
import type { KvHandle } from './router-cache-options.js';

/** The longest cached prefix of a token sequence, held against eviction until `release()`. */
export interface PrefixMatch<KV extends KvHandle> {
  /** Matched positions: a multiple of the page size, ≤ the tokens asked for. */
  readonly length: number;
  /** The engine's KV handle of each matched position. */
  readonly kv: readonly KV[];
  /**
   * The routing rows of the matched positions. Read-only: it may share memory with the cache (which never
   * writes it), so copy it before changing it. It stays valid after `release()`.
   */
  readonly routing: RoutingRecord;
  readonly weightVersion: number;
  /** Lets the cache evict these positions again. Call exactly once. */
  release(): void;
}

export interface InsertOptions {
  /** Weight version that produced the KV and routing. Default: the cache's current version. */
  readonly weightVersion?: number;
}

export interface InsertResult<KV extends KvHandle> {
  /** Positions newly cached by this insert. */
  readonly storedPositions: number;
  /** Positions that were already cached (the cache kept its own KV and routing for them). */
  readonly sharedPositions: number;
  /** Positions not cached: the partial last page, or all of them when the weight version is stale. */
  readonly skippedPositions: number;
  /** Handles the cache did not keep (duplicates of cached positions, skipped positions): free them. */
  readonly unusedKv: readonly KV[];
  /** Shared positions whose routing differed from the cached routing. */
  readonly routingConflicts: number;
}

export interface RouterCacheStats {
  /** `match` calls that found at least one page, and those that found none. */
  readonly hits: number;
  readonly misses: number;
  /** Tokens asked for by `match`, and how many of them were served from the cache. */
  readonly requestedTokens: number;
  readonly hitTokens: number;
  /** hitTokens / requestedTokens (0 before the first match). */
  readonly hitRate: number;
  readonly nodes: number;
  readonly cachedPositions: number;
  readonly kvBytes: number;
  readonly routingBytes: number;
  readonly overheadBytes: number;
  /** Everything held, including locked entries of an old weight version that wait for release. */
  readonly bytesUsed: number;
  readonly budgetBytes: number;
  readonly lockedNodes: number;
  readonly evictedNodes: number;
  readonly evictedPositions: number;
  /** Positions dropped because a newer weight version made them unusable. */
  readonly invalidatedPositions: number;
  /** Shared positions whose re-inserted routing differed from the cached routing. */
  readonly routingConflicts: number;
  /** Inserts refused because they came from an older weight version. */
  readonly staleInserts: number;
  readonly weightVersion: number;
}

/** A plain-data dump of the tree, for tests and bug reports. */
export interface RadixNodeDump {
  readonly tokens: number[];
  readonly routing: number[];
  readonly kvBytes: number;
  readonly lockCount: number;
  readonly lastAccess: number;
  readonly weightVersion: number;
  readonly children: RadixNodeDump[];
}

export interface RouterCacheDump {
  readonly weightVersion: number;
  readonly pageSize: number;
  readonly budgetBytes: number;
  readonly bytesUsed: number;
  readonly root: RadixNodeDump;
}

/** A radix prefix cache that keeps each position's KV handle and expert routing together. */
export interface RouterCache<KV extends KvHandle> {
  readonly pageSize: number;
  readonly budgetBytes: number;
  readonly weightVersion: number;
  readonly bytesUsed: number;
  /** The longest cached prefix of `tokens` (whole pages), locked until released. */
  match(tokens: ArrayLike<number>): PrefixMatch<KV>;
  /**
   * Caches `tokens` with one KV handle and one routing row per token (`routing.positions === tokens.length`).
   * Evicts least-recently-used unlocked leaves when over budget; throws `CACHE_FULL` (cache unchanged) when
   * that cannot make room.
   */
  insert(
    tokens: ArrayLike<number>,
    kv: readonly KV[],
    routing: RoutingRecord,
    options?: InsertOptions,
  ): InsertResult<KV>;
  /** Evicts least-recently-used unlocked leaves until `bytes` are freed or nothing evictable is left. */
  evict(bytes: number): number;
  /** Drops everything computed under older weights; entries in use are freed when released. */
  setWeightVersion(version: number): void;
  stats(): RouterCacheStats;
  toJSON(): RouterCacheDump;
}
