import { MoerlError } from '@moerl/core';
import { createRouterCache } from '@moerl/router-cache';
import type { PositionKv, PrefixStore, PrefixStoreOptions } from './prefix-store.js';
import { createSimplePrefixStore } from './simple-prefix-store.js';

export type PrefixStoreImplementation = 'router-cache' | 'simple';

/** @moerl/router-cache's radix cache behind the engine's seam, one page per position. */
function routerCacheStore(options: PrefixStoreOptions): PrefixStore {
  // KV handles are plain typed arrays that the garbage collector frees, so evictions need no callback.
  const cache = createRouterCache<PositionKv>({ ...options, pageSize: 1 });
  return {
    match: (tokens) => cache.match(tokens),
    insert(tokens, kv, routing) {
      try {
        cache.insert(tokens, kv, routing);
      } catch (error) {
        // Caching is best effort: a prefix that does not fit the budget is simply not stored.
        if (!MoerlError.isInstance(error, 'CACHE_FULL')) throw error;
      }
    },
    setWeightVersion: (version) => cache.setWeightVersion(version),
    stats() {
      const stats = cache.stats();
      return {
        hits: stats.hits,
        misses: stats.misses,
        hitTokens: stats.hitTokens,
        requestedTokens: stats.requestedTokens,
        kvBytes: stats.kvBytes,
        evictions: stats.evictedPositions,
      };
    },
  };
}

/**
 * The engine's prefix cache: @moerl/router-cache's radix cache (default), or the simple built-in store
 * with the same contract (a flat list, for comparison and as a fallback).
 */
export function createPrefixStore(
  options: PrefixStoreOptions,
  implementation: PrefixStoreImplementation = 'router-cache',
): PrefixStore {
  return implementation === 'router-cache' ? routerCacheStore(options) : createSimplePrefixStore(options);
}
