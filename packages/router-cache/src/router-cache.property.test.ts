import { MoerlError } from '@moerl/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type FakeKv, kvFor, routingFor } from './__fixtures__/fake-engine.js';
import { createRouterCache } from './router-cache.js';
import type { PrefixMatch } from './router-cache-types.js';

const shape = { moeLayers: 2, topK: 2, numExperts: 6 };

/** The naive reference: every sequence inserted under the current weights, as a plain list. */
class NaiveCache {
  sequences: number[][] = [];

  insert(tokens: number[], pageSize: number): void {
    this.sequences.push(tokens.slice(0, tokens.length - (tokens.length % pageSize)));
  }

  longestPrefix(tokens: number[], pageSize: number): number {
    let best = 0;
    for (const stored of this.sequences) {
      let length = 0;
      while (length < stored.length && length < tokens.length && stored[length] === tokens[length]) length++;
      best = Math.max(best, length - (length % pageSize));
    }
    return best;
  }

  isPrefixOfSome(tokens: number[]): boolean {
    if (tokens.length === 0) return true;
    return this.sequences.some((stored) => tokens.every((token, index) => stored[index] === token));
  }
}

// Small alphabet and lengths so sequences share prefixes often.
const tokensArb = fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 0, maxLength: 12 });
const operationArb = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('insert' as const), tokens: tokensArb }) },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('match' as const), tokens: tokensArb, keep: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), which: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('evict' as const), bytes: fc.integer({ min: 0, max: 400 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('newVersion' as const) }) },
);

const KV_BYTES = 10;

type Operation = typeof operationArb extends fc.Arbitrary<infer O> ? O : never;

function run(operations: Operation[], pageSize: number, budgetBytes: number, unlimited: boolean) {
  const freed = new Map<number, number>();
  const returned = new Set<number>();
  const taken = new Set<number>();
  const cache = createRouterCache<FakeKv>({
    ...shape,
    pageSize,
    budgetBytes,
    onEvict: (handles) => {
      for (const handle of handles) freed.set(handle.id, (freed.get(handle.id) ?? 0) + 1);
    },
  });
  const naive = new NaiveCache();
  const locks: PrefixMatch<FakeKv>[] = [];
  // Exact agreement with the naive list holds until something is evicted on purpose.
  let exact = unlimited;
  const lockedIds = () => new Set(locks.flatMap((lock) => lock.kv.map((handle) => handle.id)));

  for (const operation of operations) {
    if (operation.kind === 'insert') {
      const kv = kvFor(operation.tokens, cache.weightVersion, KV_BYTES);
      for (const handle of kv) taken.add(handle.id);
      try {
        const result = cache.insert(operation.tokens, kv, routingFor(operation.tokens, shape));
        for (const handle of result.unusedKv) returned.add(handle.id);
        naive.insert(operation.tokens, pageSize);
        expect(result.routingConflicts).toBe(0);
      } catch (error) {
        // Only a full cache may refuse a well-formed insert, and then the engine keeps its handles.
        expect(MoerlError.isInstance(error, 'CACHE_FULL')).toBe(true);
        expect(unlimited).toBe(false);
        for (const handle of kv) returned.add(handle.id);
      }
    } else if (operation.kind === 'match') {
      const hit = cache.match(operation.tokens);
      const prefix = operation.tokens.slice(0, hit.length);
      // A true prefix, in whole pages, of something inserted under the current weights.
      expect(hit.length % pageSize).toBe(0);
      expect(naive.isPrefixOfSome(prefix)).toBe(true);
      if (exact) expect(hit.length).toBe(naive.longestPrefix(operation.tokens, pageSize));
      else expect(hit.length).toBeLessThanOrEqual(naive.longestPrefix(operation.tokens, pageSize));
      // The rows and handles inserted for exactly these positions, from the current weights.
      expect(Array.from(hit.routing.experts)).toEqual(Array.from(routingFor(prefix, shape).experts));
      expect(hit.kv.map((handle) => handle.prefix)).toEqual(
        prefix.map((_, index) => prefix.slice(0, index + 1).join(',')),
      );
      for (const handle of hit.kv) {
        expect(handle.weightVersion).toBe(cache.weightVersion);
        expect(freed.has(handle.id)).toBe(false);
      }
      if (operation.keep && hit.length > 0) locks.push(hit);
      else hit.release();
    } else if (operation.kind === 'release') {
      if (locks.length > 0) locks.splice(operation.which % locks.length, 1)[0]!.release();
    } else if (operation.kind === 'evict') {
      if (cache.evict(operation.bytes) > 0) exact = false;
    } else {
      cache.setWeightVersion(cache.weightVersion + 1);
      naive.sequences = [];
    }
    // Budget and locks hold after every operation.
    expect(cache.bytesUsed).toBeLessThanOrEqual(budgetBytes);
    for (const id of lockedIds()) expect(freed.has(id)).toBe(false);
    const stats = cache.stats();
    expect(stats.bytesUsed).toBe(stats.kvBytes + stats.routingBytes + stats.overheadBytes);
  }

  // Every handle the engine handed over comes back exactly once: now, or when the cache lets go of it.
  for (const lock of locks) lock.release();
  cache.setWeightVersion(cache.weightVersion + 1);
  expect(cache.bytesUsed).toBe(0);
  for (const id of taken) {
    const times = (freed.get(id) ?? 0) + (returned.has(id) ? 1 : 0);
    expect(times).toBe(1);
  }
}

describe('router cache against a naive list of sequences', () => {
  for (const pageSize of [1, 2, 3]) {
    it(`page size ${pageSize}, unlimited budget: match finds the longest stored prefix`, () => {
      fc.assert(
        fc.property(fc.array(operationArb, { maxLength: 40 }), (operations) =>
          run(operations, pageSize, 1e9, true),
        ),
        { numRuns: 150 },
      );
    });

    it(`page size ${pageSize}, tight budget: never over budget, never frees what is locked`, () => {
      fc.assert(
        fc.property(
          fc.array(operationArb, { maxLength: 40 }),
          fc.integer({ min: 0, max: 600 }),
          (operations, budget) => run(operations, pageSize, budget, false),
        ),
        { numRuns: 150 },
      );
    });
  }
});
