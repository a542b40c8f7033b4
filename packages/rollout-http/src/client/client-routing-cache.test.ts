import { createRoutingRecord, sliceRoutingRecord } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { config, flat, moeRows } from '../__fixtures__/routing-rows.js';
import { ClientRoutingCache } from './client-routing-cache.js';

const recordOf = (rows: number[][][]) =>
  createRoutingRecord({ positions: rows.length, moeLayers: 2, topK: 2, numExperts: 6 }, flat(rows));
const tokens = (...ids: number[]) => Int32Array.from(ids);

describe('ClientRoutingCache', () => {
  it('matches the longest cached prefix, across different prompts that share it', () => {
    const cache = new ClientRoutingCache(config, 1 << 20);
    expect(cache.match(tokens(1, 2, 3))).toBeUndefined();
    cache.insert(tokens(1, 2, 3, 4, 5), recordOf(moeRows(5)), '7');
    const shared = cache.match(tokens(1, 2, 3, 9, 9, 9));
    expect(shared?.length).toBe(3);
    expect(shared?.weightVersion).toBe('7');
    expect([...shared!.routing.experts]).toEqual(flat(moeRows(3)));
    shared!.release();
    const whole = cache.match(tokens(1, 2, 3, 4, 5, 6));
    expect(whole?.length).toBe(5);
    whole!.release();
    expect(cache.match(tokens(8, 1, 2))).toBeUndefined();
  });

  it('a new server weight version drops everything fetched at the old one', () => {
    const cache = new ClientRoutingCache(config, 1 << 20);
    cache.insert(tokens(1, 2, 3), recordOf(moeRows(3)), '1');
    cache.insert(tokens(5, 6), recordOf(moeRows(2, 3)), '2');
    expect(cache.match(tokens(1, 2, 3))).toBeUndefined();
    const hit = cache.match(tokens(5, 6));
    expect(hit?.weightVersion).toBe('2');
    expect([...hit!.routing.experts]).toEqual(flat(moeRows(2, 3)));
    hit!.release();
    cache.clear();
    expect(cache.match(tokens(5, 6))).toBeUndefined();
  });

  it('ignores inserts from a server still on older weights instead of dropping the newer rows', () => {
    const cache = new ClientRoutingCache(config, 1 << 20);
    cache.insert(tokens(1, 2, 3), recordOf(moeRows(3)), '5');
    cache.insert(tokens(7, 8), recordOf(moeRows(2)), '4');
    const hit = cache.match(tokens(1, 2, 3));
    expect(hit?.weightVersion).toBe('5');
    hit!.release();
    expect(cache.match(tokens(7, 8))).toBeUndefined();
  });

  it('keeps within its byte budget, and skips (counts) an insert that cannot fit beside held prefixes', () => {
    // 20 positions × (4 routing bytes + 16 overhead) = 400 bytes: room for one 20-token sequence.
    const cache = new ClientRoutingCache(config, 400);
    const long = Int32Array.from({ length: 20 }, (_, index) => index);
    cache.insert(long, recordOf(moeRows(20)), '0');
    const held = cache.match(long);
    expect(held?.length).toBe(20);
    cache.insert(tokens(30, 31), sliceRoutingRecord(recordOf(moeRows(20)), 0, 2), '0');
    expect(cache.skippedFull).toBe(1);
    held!.release();
    cache.insert(tokens(30, 31), sliceRoutingRecord(recordOf(moeRows(20)), 0, 2), '0');
    expect(cache.skippedFull).toBe(1);
    expect(cache.stats().bytesUsed).toBeLessThanOrEqual(400);
    expect(cache.match(long)).toBeUndefined(); // evicted to make room
  });

  it('refuses routing of the wrong shape with ROUTING_SHAPE instead of caching it', () => {
    const cache = new ClientRoutingCache(config, 1 << 20);
    expect(() => cache.insert(tokens(1, 2, 3), recordOf(moeRows(2)), '0')).toThrow(
      expect.objectContaining({ code: 'ROUTING_SHAPE' }),
    );
  });
});
