import { createRoutingRecord, type RoutingRecord, sliceRoutingRecord } from '@moerl/core';
import type { PositionKv, PrefixMatch, PrefixStore, PrefixStoreOptions } from './prefix-store.js';

interface Entry {
  readonly tokens: Int32Array;
  readonly kv: readonly PositionKv[];
  readonly routing: RoutingRecord;
  readonly bytes: number;
  lastUsed: number;
}

function commonPrefix(a: Int32Array, b: Int32Array): number {
  const limit = Math.min(a.length, b.length);
  let length = 0;
  while (length < limit && a[length] === b[length]) length++;
  return length;
}

/**
 * A flat list of cached sequences with longest-common-prefix lookup and least-recently-used eviction under
 * a byte budget: the simplest store behind the engine's seam, kept as a baseline for @moerl/router-cache
 * (a radix tree with shared nodes and reference-counted locks), which the engine uses by default.
 * Entries are never mutated after insertion, so a match needs no lock.
 */
export function createSimplePrefixStore(options: PrefixStoreOptions): PrefixStore {
  let entries: Entry[] = [];
  let clock = 0;
  let weightVersion = 0;
  const counters = { hits: 0, misses: 0, hitTokens: 0, requestedTokens: 0, evictions: 0 };
  const kvBytes = () => entries.reduce((sum, entry) => sum + entry.bytes, 0);
  const empty = () =>
    createRoutingRecord({
      positions: 0,
      moeLayers: options.moeLayers,
      topK: options.topK,
      numExperts: options.numExperts,
    });

  return {
    match(tokens): PrefixMatch {
      let best: Entry | undefined;
      let length = 0;
      for (const entry of entries) {
        const shared = commonPrefix(entry.tokens, tokens);
        if (shared > length) {
          best = entry;
          length = shared;
        }
      }
      counters.requestedTokens += tokens.length;
      if (best === undefined) {
        counters.misses++;
        return { length: 0, kv: [], routing: empty(), release() {} };
      }
      counters.hits++;
      counters.hitTokens += length;
      best.lastUsed = ++clock;
      return {
        length,
        kv: best.kv.slice(0, length),
        routing: sliceRoutingRecord(best.routing, 0, length),
        release() {},
      };
    },

    insert(tokens, kv, routing) {
      // Skip what is already covered; replace entries the new sequence extends.
      if (entries.some((entry) => commonPrefix(entry.tokens, tokens) === tokens.length)) return;
      entries = entries.filter((entry) => commonPrefix(entry.tokens, tokens) < entry.tokens.length);
      const bytes = kv.reduce((sum, handle) => sum + handle.bytes, 0);
      entries.push({ tokens: tokens.slice(), kv: [...kv], routing, bytes, lastUsed: ++clock });
      while (entries.length > 1 && kvBytes() > options.budgetBytes) {
        const oldest = entries.reduce((a, b) => (a.lastUsed <= b.lastUsed ? a : b));
        entries = entries.filter((entry) => entry !== oldest);
        counters.evictions++;
      }
    },

    setWeightVersion(version) {
      if (version !== weightVersion) entries = [];
      weightVersion = version;
    },

    stats() {
      return { ...counters, kvBytes: kvBytes() };
    },
  };
}
