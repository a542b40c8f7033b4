import { createRoutingRecord, MoerlError } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { type FakeKv, kvFor, routingFor } from './__fixtures__/fake-engine.js';
import { createRouterCache } from './router-cache.js';
import type { RouterCacheOptions } from './router-cache-options.js';

const shape = { moeLayers: 2, topK: 2, numExperts: 8 };
const KV_BYTES = 100;
/** 2 layers × top-2 one-byte ids + 16 bytes overhead per position. */
const POSITION_BYTES = KV_BYTES + 4 + 16;

function makeCache(options: Partial<RouterCacheOptions<FakeKv>> = {}) {
  const evicted: FakeKv[] = [];
  const cache = createRouterCache<FakeKv>({
    ...shape,
    budgetBytes: 1_000_000,
    onEvict: (handles) => evicted.push(...handles),
    ...options,
  });
  const insert = (tokens: number[], version = cache.weightVersion) =>
    cache.insert(tokens, kvFor(tokens, version, KV_BYTES), routingFor(tokens, shape), {
      weightVersion: version,
    });
  return { cache, evicted, insert };
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return MoerlError.isInstance(error) ? error.code : 'not a MoerlError';
  }
  return undefined;
}

describe('match and insert', () => {
  it('misses on an empty cache and counts the request', () => {
    const { cache } = makeCache();
    const hit = cache.match([1, 2, 3]);
    expect(hit.length).toBe(0);
    expect(hit.kv).toEqual([]);
    expect(hit.routing.positions).toBe(0);
    expect(cache.stats()).toMatchObject({ hits: 0, misses: 1, requestedTokens: 3, hitTokens: 0 });
  });

  it('returns the KV handles and routing rows inserted for the longest cached prefix', () => {
    const { cache, insert } = makeCache();
    const tokens = [5, 6, 7, 8, 9];
    insert(tokens);
    const hit = cache.match([5, 6, 7, 1]);
    expect(hit.length).toBe(3);
    expect(hit.kv.map((handle) => handle.prefix)).toEqual(['5', '5,6', '5,6,7']);
    expect(Array.from(hit.routing.experts)).toEqual(Array.from(routingFor([5, 6, 7], shape).experts));
    expect(hit.routing).toMatchObject({ positions: 3, moeLayers: 2, topK: 2 });
    hit.release();
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 0, requestedTokens: 4, hitTokens: 3 });
  });

  it('splits an edge when a match ends inside it, keeping every position reachable', () => {
    const { cache, insert } = makeCache();
    insert([1, 2, 3, 4]);
    expect(cache.toJSON().root.children.map((child) => child.tokens)).toEqual([[1, 2, 3, 4]]);
    cache.match([1, 2, 9]).release();
    const root = cache.toJSON().root;
    expect(root.children[0]!.tokens).toEqual([1, 2]);
    expect(root.children[0]!.children[0]!.tokens).toEqual([3, 4]);
    expect(cache.match([1, 2, 3, 4]).length).toBe(4);
    expect(cache.stats().nodes).toBe(2);
  });

  it('shares the cached prefix on insert and stores only the new suffix as a branch', () => {
    const { cache, insert } = makeCache();
    insert([1, 2, 3, 4]);
    const result = insert([1, 2, 7, 8, 9]);
    expect(result).toMatchObject({
      storedPositions: 3,
      sharedPositions: 2,
      skippedPositions: 0,
      routingConflicts: 0,
    });
    // The two duplicated prefix handles go back to the engine; the cache keeps its own.
    expect(result.unusedKv.map((handle) => handle.prefix)).toEqual(['1', '1,2']);
    const root = cache.toJSON().root;
    expect(root.children[0]!.tokens).toEqual([1, 2]);
    expect(root.children[0]!.children.map((child) => child.tokens)).toEqual([
      [3, 4],
      [7, 8, 9],
    ]);
    expect(cache.stats()).toMatchObject({
      cachedPositions: 7,
      kvBytes: 7 * KV_BYTES,
      bytesUsed: 7 * POSITION_BYTES,
    });
  });

  it('does not hand back handles the engine got from a match and passed in again', () => {
    const { cache, insert } = makeCache();
    insert([1, 2, 3]);
    const hit = cache.match([1, 2, 3]);
    const extended = [1, 2, 3, 4, 5];
    const kv = [...hit.kv, ...kvFor(extended, 0, KV_BYTES).slice(3)];
    const result = cache.insert(extended, kv, routingFor(extended, shape));
    hit.release();
    expect(result.unusedKv).toEqual([]);
    expect(result.storedPositions).toBe(2);
  });

  it('copies inserted routing, so later changes to the caller’s arrays do not leak in', () => {
    const { cache } = makeCache();
    const routing = routingFor([1, 2], shape);
    cache.insert([1, 2], kvFor([1, 2], 0, KV_BYTES), routing);
    const before = Array.from(routing.experts);
    routing.experts.fill(7);
    expect(Array.from(cache.match([1, 2]).routing.experts)).toEqual(before);
  });

  it('keeps matched routing valid after the match ends inside an edge, is released or evicted', () => {
    const { cache, insert } = makeCache();
    insert([1, 2, 3, 4]);
    const whole = cache.match([1, 2, 3, 4]);
    const part = cache.match([1, 2, 9]);
    whole.release();
    part.release();
    cache.evict(Number.POSITIVE_INFINITY);
    expect(Array.from(whole.routing.experts)).toEqual(Array.from(routingFor([1, 2, 3, 4], shape).experts));
    expect(Array.from(part.routing.experts)).toEqual(Array.from(routingFor([1, 2], shape).experts));
  });

  it('stores wide (Uint16) expert ids for models with more than 256 experts', () => {
    const wide = { moeLayers: 1, topK: 2, numExperts: 300 };
    const cache = createRouterCache<FakeKv>({ ...wide, budgetBytes: 10_000 });
    const routing = createRoutingRecord({ ...wide, positions: 2 }, [299, 256, 0, 1]);
    cache.insert([4, 5], kvFor([4, 5], 0, 10), routing);
    const hit = cache.match([4, 5]);
    expect(hit.routing.experts).toBeInstanceOf(Uint16Array);
    expect(Array.from(hit.routing.experts)).toEqual([299, 256, 0, 1]);
  });
});

describe('pages', () => {
  it('caches whole pages only and hands back the handles of the partial last page', () => {
    const { cache, insert } = makeCache({ pageSize: 4 });
    const result = insert([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(result).toMatchObject({ storedPositions: 8, skippedPositions: 2 });
    expect(result.unusedKv.map((handle) => handle.prefix.split(',').length)).toEqual([9, 10]);
    expect(cache.match([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).length).toBe(8);
    expect(cache.match([1, 2, 3, 4, 5, 6, 7]).length).toBe(4);
    expect(cache.match([1, 2, 3]).length).toBe(0);
  });

  it('rounds a match that diverges inside a page down to the page boundary', () => {
    const { cache, insert } = makeCache({ pageSize: 4 });
    insert([1, 2, 3, 4, 5, 6, 7, 8]);
    const hit = cache.match([1, 2, 3, 4, 5, 6, 0, 8]);
    expect(hit.length).toBe(4);
    expect(hit.kv).toHaveLength(4);
    hit.release();
    // Pages that share their first token but differ later are different children.
    const result = insert([1, 2, 3, 4, 5, 6, 0, 8]);
    expect(result).toMatchObject({ sharedPositions: 4, storedPositions: 4 });
    const root = cache.toJSON().root;
    expect(root.children[0]!.children.map((child) => child.tokens).sort()).toEqual([
      [5, 6, 0, 8],
      [5, 6, 7, 8],
    ]);
  });
});

describe('routing conflicts', () => {
  it('counts and reports re-inserted positions whose experts differ, keeping the cached routing', () => {
    const reports: { positions: readonly number[] }[] = [];
    const { cache, insert } = makeCache({ onRoutingConflict: (report) => reports.push(report) });
    const tokens = [3, 1, 4, 1, 5];
    insert(tokens);
    const different = routingFor(tokens, shape, 1);
    const result = cache.insert(tokens, kvFor(tokens, 0, KV_BYTES), different);
    expect(result.routingConflicts).toBe(5);
    expect(reports).toHaveLength(1);
    expect(reports[0]!.positions).toEqual([0, 1, 2, 3, 4]);
    expect(cache.stats().routingConflicts).toBe(5);
    expect(Array.from(cache.match(tokens).routing.experts)).toEqual(
      Array.from(routingFor(tokens, shape).experts),
    );
  });

  it('treats the same experts in another order as agreement', () => {
    const { cache, insert } = makeCache();
    insert([1, 2]);
    const swapped = routingFor([1, 2], shape);
    const ids = Array.from(swapped.experts);
    for (let row = 0; row < ids.length; row += 2) [ids[row], ids[row + 1]] = [ids[row + 1]!, ids[row]!];
    const result = cache.insert(
      [1, 2],
      kvFor([1, 2], 0, KV_BYTES),
      createRoutingRecord({ ...shape, positions: 2 }, ids),
    );
    expect(result.routingConflicts).toBe(0);
  });
});

describe('budget and eviction', () => {
  it('evicts least-recently-used leaves to fit an insert and tells the engine which handles to free', () => {
    const { cache, evicted, insert } = makeCache({ budgetBytes: 6 * POSITION_BYTES });
    insert([1, 1]);
    insert([2, 2]);
    insert([3, 3]);
    cache.match([1, 1]).release(); // [1,1] is now more recent than [2,2]
    insert([4, 4]);
    expect(evicted.map((handle) => handle.prefix)).toEqual(['2', '2,2']);
    expect(cache.match([2, 2]).length).toBe(0);
    expect(cache.match([1, 1]).length).toBe(2);
    expect(cache.stats()).toMatchObject({
      evictedNodes: 1,
      evictedPositions: 2,
      bytesUsed: 6 * POSITION_BYTES,
    });
  });

  it('evicts a parent once all its children are gone', () => {
    const { cache, evicted, insert } = makeCache({ budgetBytes: 5 * POSITION_BYTES });
    insert([1, 2, 3]);
    insert([1, 2, 4]); // tree: [1,2] → {[3], [4]}
    insert([9, 9, 9, 9, 9]);
    expect(evicted).toHaveLength(4);
    expect(cache.match([1]).length).toBe(0);
    expect(cache.stats().cachedPositions).toBe(5);
  });

  it('throws CACHE_FULL and changes nothing when only locked entries could make room', () => {
    const { cache, evicted, insert } = makeCache({ budgetBytes: 4 * POSITION_BYTES });
    insert([1, 2, 3, 4]);
    const hit = cache.match([1, 2, 3, 4]);
    const before = JSON.stringify(cache.toJSON());
    const statsBefore = cache.stats();
    expect(codeOf(() => insert([5, 6]))).toBe('CACHE_FULL');
    expect(JSON.stringify(cache.toJSON())).toBe(before);
    expect(cache.stats()).toEqual(statsBefore);
    expect(evicted).toEqual([]);
    hit.release();
    insert([5, 6]);
    expect(evicted).toHaveLength(4);
  });

  it('does not evict the prefix an insert is extending', () => {
    const { cache, evicted, insert } = makeCache({ budgetBytes: 4 * POSITION_BYTES });
    insert([1, 2]);
    insert([7, 7]);
    insert([1, 2, 3, 4]);
    expect(evicted.map((handle) => handle.prefix)).toEqual(['7', '7,7']);
    expect(cache.match([1, 2, 3, 4]).length).toBe(4);
  });

  it('refuses an insert larger than the whole budget with CACHE_FULL', () => {
    const { insert } = makeCache({ budgetBytes: 2 * POSITION_BYTES });
    expect(codeOf(() => insert([1, 2, 3]))).toBe('CACHE_FULL');
    let message = '';
    try {
      insert([1, 2, 3]);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toBe(
      `Router cache cannot fit an insert of ${3 * POSITION_BYTES} bytes: it alone exceeds the whole budget of ${2 * POSITION_BYTES} bytes (budgetBytes); raise budgetBytes or cache shorter prefixes`,
    );
  });

  it('evicts on request and returns the bytes freed', () => {
    const { cache, evicted, insert } = makeCache();
    insert([1, 2]);
    insert([3]);
    const freed = cache.evict(POSITION_BYTES);
    expect(freed).toBe(2 * POSITION_BYTES);
    expect(evicted).toHaveLength(2);
    expect(cache.evict(Number.POSITIVE_INFINITY)).toBe(POSITION_BYTES);
    expect(cache.stats().bytesUsed).toBe(0);
  });
});

describe('weight versions', () => {
  it('frees everything older and never matches it again', () => {
    const { cache, evicted, insert } = makeCache();
    insert([1, 2, 3]);
    cache.setWeightVersion(1);
    expect(evicted).toHaveLength(3);
    expect(cache.match([1, 2, 3]).length).toBe(0);
    expect(cache.stats()).toMatchObject({ bytesUsed: 0, invalidatedPositions: 3, weightVersion: 1 });
    insert([1, 2, 3]);
    expect(cache.match([1, 2, 3]).kv.every((handle) => handle.weightVersion === 1)).toBe(true);
  });

  it('keeps old entries in use until released, then frees them', () => {
    const { cache, evicted, insert } = makeCache();
    insert([1, 2, 3]);
    const hit = cache.match([1, 2]);
    cache.setWeightVersion(2);
    expect(evicted.map((handle) => handle.prefix)).toEqual(['1,2,3']);
    expect(cache.match([1, 2]).length).toBe(0);
    expect(cache.stats().bytesUsed).toBe(2 * POSITION_BYTES);
    hit.release();
    expect(evicted).toHaveLength(3);
    expect(cache.stats().bytesUsed).toBe(0);
  });

  it('refuses KV from older weights and hands it back', () => {
    const { cache, insert } = makeCache({ weightVersion: 3 });
    const result = insert([1, 2], 2);
    expect(result).toMatchObject({ storedPositions: 0, skippedPositions: 2 });
    expect(result.unusedKv).toHaveLength(2);
    expect(cache.stats().staleInserts).toBe(1);
    expect(cache.match([1, 2]).length).toBe(0);
  });

  it('rejects a version from the future and a version going backwards', () => {
    const { cache, insert } = makeCache({ weightVersion: 3 });
    expect(codeOf(() => insert([1], 4))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => cache.setWeightVersion(2))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => cache.setWeightVersion(3.5))).toBe('INVALID_ARGUMENT');
  });
});

describe('bad input leaves the cache unchanged', () => {
  const tokens = [1, 2, 3];
  const cases: [string, string, (cache: ReturnType<typeof makeCache>['cache']) => unknown][] = [
    [
      'routing rows of the wrong width',
      'ROUTING_SHAPE',
      (cache) =>
        cache.insert(
          tokens,
          kvFor(tokens, 0, 1),
          routingFor(tokens, { moeLayers: 2, topK: 1, numExperts: 8 }),
        ),
    ],
    [
      'routing of the wrong number of positions',
      'ROUTING_SHAPE',
      (cache) => cache.insert(tokens, kvFor(tokens, 0, 1), routingFor([1, 2], shape)),
    ],
    [
      'an expert id ≥ numExperts',
      'ROUTING_SHAPE',
      (cache) => {
        const routing = routingFor(tokens, shape);
        routing.experts[5] = 8;
        return cache.insert(tokens, kvFor(tokens, 0, 1), routing);
      },
    ],
    [
      'a token that is not an integer',
      'INVALID_ARGUMENT',
      (cache) => cache.insert([1, 2.5, 3], kvFor(tokens, 0, 1), routingFor(tokens, shape)),
    ],
    ['a negative token', 'INVALID_ARGUMENT', (cache) => cache.match([1, -1])],
    ['a NaN token', 'INVALID_ARGUMENT', (cache) => cache.match([Number.NaN])],
    [
      'fewer KV handles than tokens',
      'INVALID_ARGUMENT',
      (cache) => cache.insert(tokens, kvFor([1, 2], 0, 1), routingFor(tokens, shape)),
    ],
    [
      'a KV handle without a byte size',
      'INVALID_ARGUMENT',
      (cache) =>
        cache.insert(
          tokens,
          [...kvFor([1, 2], 0, 1), { bytes: Number.NaN } as FakeKv],
          routingFor(tokens, shape),
        ),
    ],
    ['a negative eviction request', 'INVALID_ARGUMENT', (cache) => cache.evict(-1)],
  ];
  for (const [name, code, run] of cases) {
    it(`${name} → ${code}`, () => {
      const { cache, evicted, insert } = makeCache();
      insert([1, 2, 9]);
      const before = JSON.stringify(cache.toJSON());
      expect(codeOf(() => run(cache))).toBe(code);
      expect(JSON.stringify(cache.toJSON())).toBe(before);
      expect(evicted).toEqual([]);
    });
  }

  it('rejects a second release of the same match', () => {
    const { cache, insert } = makeCache();
    insert([1, 2]);
    const hit = cache.match([1, 2]);
    hit.release();
    expect(codeOf(() => hit.release())).toBe('INVALID_ARGUMENT');
    expect(cache.stats().lockedNodes).toBe(0);
  });

  it('names the option at fault', () => {
    expect(() => createRouterCache({ ...shape, budgetBytes: -1 })).toThrow(/budgetBytes/);
    expect(() => createRouterCache({ ...shape, budgetBytes: 1, pageSize: 0 })).toThrow(/pageSize/);
    expect(() => createRouterCache({ ...shape, topK: 9, budgetBytes: 1 })).toThrow(/numExperts/);
    expect(codeOf(() => createRouterCache({ ...shape, budgetBytes: 1.5 }))).toBe('CONFIG_INVALID');
  });
});
