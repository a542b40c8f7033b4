import { describe, expect, it } from 'vitest';
import { ServerPool } from './server-pool.js';

describe('ServerPool', () => {
  it('least-loaded picks the server with fewest calls in flight', async () => {
    const pool = new ServerPool(['a', 'b', 'c'], 2, 'least-loaded');
    const first = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    expect(first.sort()).toEqual([0, 1, 2]);
    pool.release(1);
    expect(await pool.acquire()).toBe(1);
  });

  it('round-robin goes in turn, skipping full servers', async () => {
    const pool = new ServerPool(['a', 'b'], 1, 'round-robin');
    expect(await pool.acquire()).toBe(0);
    expect(await pool.acquire()).toBe(1);
    pool.release(0);
    expect(await pool.acquire()).toBe(0);
  });

  it('bounds calls in flight and serves waiters first come, first served', async () => {
    const pool = new ServerPool(['a'], 1, 'least-loaded');
    await pool.acquire();
    const order: string[] = [];
    const second = pool.acquire().then(() => order.push('second'));
    const third = pool.acquire().then(() => order.push('third'));
    await Promise.resolve();
    expect(order).toEqual([]);
    expect(pool.inFlight(0)).toBe(1);
    pool.release(0);
    await second;
    pool.release(0);
    await third;
    expect(order).toEqual(['second', 'third']);
  });

  it('rejects an empty server list and a non-positive limit', () => {
    expect(() => new ServerPool([], 1, 'least-loaded')).toThrow(/at least one base URL/);
    expect(() => new ServerPool(['a'], 0, 'least-loaded')).toThrow(/positive integer/);
  });
});
