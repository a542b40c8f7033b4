import { createRoutingRecord } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import type { PositionKv } from './prefix-store.js';
import { createSimplePrefixStore } from './simple-prefix-store.js';

const handle = (value: number): PositionKv => ({ bytes: 4, data: Float32Array.of(value) });
const options = { moeLayers: 1, topK: 1, numExperts: 4, budgetBytes: 1000 };
const routingFor = (ids: number[]) =>
  createRoutingRecord({ positions: ids.length, moeLayers: 1, topK: 1, numExperts: 4 }, ids);

describe('createSimplePrefixStore', () => {
  it('returns the longest common prefix with its KV handles and routing rows', () => {
    const store = createSimplePrefixStore(options);
    store.insert(Int32Array.of(1, 2, 3, 4), [10, 20, 30, 40].map(handle), routingFor([0, 1, 2, 3]));
    store.insert(Int32Array.of(1, 9), [10, 90].map(handle), routingFor([0, 3]));
    const hit = store.match(Int32Array.of(1, 2, 3, 7, 7));
    expect(hit.length).toBe(3);
    expect(hit.kv.map((kv) => kv.data[0])).toEqual([10, 20, 30]);
    expect([...hit.routing.experts]).toEqual([0, 1, 2]);
    expect(store.match(Int32Array.of(5)).length).toBe(0);
    expect(store.stats()).toMatchObject({ hits: 1, misses: 1, hitTokens: 3, requestedTokens: 6 });
  });

  it('a new weight version empties it; the same version keeps it', () => {
    const store = createSimplePrefixStore(options);
    store.insert(Int32Array.of(1, 2), [1, 2].map(handle), routingFor([0, 1]));
    store.setWeightVersion(0);
    expect(store.match(Int32Array.of(1, 2)).length).toBe(2);
    store.setWeightVersion(1);
    expect(store.match(Int32Array.of(1, 2)).length).toBe(0);
  });

  it('evicts the least recently used sequence beyond the byte budget', () => {
    const store = createSimplePrefixStore({ ...options, budgetBytes: 16 });
    store.insert(Int32Array.of(1, 1), [1, 1].map(handle), routingFor([0, 0]));
    store.insert(Int32Array.of(2, 2), [2, 2].map(handle), routingFor([0, 0]));
    store.match(Int32Array.of(1)); // touch the first
    store.insert(Int32Array.of(3, 3), [3, 3].map(handle), routingFor([0, 0]));
    expect(store.match(Int32Array.of(1, 1)).length).toBe(2);
    expect(store.match(Int32Array.of(2, 2)).length).toBe(0);
    expect(store.stats().evictions).toBe(1);
    expect(store.stats().kvBytes).toBe(16);
  });
});
