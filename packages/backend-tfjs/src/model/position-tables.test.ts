import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { activateTfjsBackend } from '../runtime/tfjs-runtime.js';
import { createPositionTableCache, createPositionTensors, type PositionTensors } from './position-tables.js';

beforeAll(async () => {
  await activateTfjsBackend('tfjs-wasm');
});

const model = { headDim: 8, ropeTheta: 10000 };

describe('createPositionTensors', () => {
  it('builds RoPE tables from the float32 angles and a causal mask (hand-checked at length 3)', () => {
    tf.tidy(() => {
      const { cos, sin, rotateHalf, causalMask } = createPositionTensors(3, 8, 10000);
      expect(cos.shape).toEqual([1, 3, 1, 8]);
      expect(sin.shape).toEqual([1, 3, 1, 8]);
      // rotate_half([1, 2, …, 8]) = [−5, −6, −7, −8, 1, 2, 3, 4].
      const rotated = tf.matMul(tf.tensor2d([[1, 2, 3, 4, 5, 6, 7, 8]]), rotateHalf);
      expect([...rotated.dataSync()]).toEqual([-5, -6, -7, -8, 1, 2, 3, 4]);
      // −1e9 strictly above the diagonal (a position never reads a later one), 0 elsewhere.
      const blocked = Math.fround(-1e9);
      expect([...causalMask.dataSync()]).toEqual([0, blocked, blocked, 0, 0, blocked, 0, 0, 0]);
      // Position 2, frequency index 1: angle 2 · 10000^(−2/8) = 0.2 exactly as float32 allows.
      const angle = Math.fround(2 * Math.fround(1 / Math.fround(10000 ** Math.fround(2 / 8))));
      // Both halves of the head carry the same frequencies.
      for (const index of [2 * 8 + 1, 2 * 8 + 5]) {
        expect(cos.dataSync()[index]).toBe(Math.fround(Math.cos(angle)));
        expect(sin.dataSync()[index]).toBe(Math.fround(Math.sin(angle)));
      }
      expect([...cos.dataSync().subarray(0, 8)]).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    });
  });
});

describe('createPositionTableCache', () => {
  it('returns the same values as building afresh, and the same tensors on a hit', () => {
    const cache = createPositionTableCache(model);
    for (const length of [5, 1, 12]) {
      const cached = cache.get(length);
      tf.tidy(() => {
        const fresh = createPositionTensors(length, model.headDim, model.ropeTheta);
        expect(cached.cos.dataSync()).toEqual(fresh.cos.dataSync());
        expect(cached.sin.dataSync()).toEqual(fresh.sin.dataSync());
        expect(cached.rotateHalf.dataSync()).toEqual(fresh.rotateHalf.dataSync());
        expect(cached.causalMask.dataSync()).toEqual(fresh.causalMask.dataSync());
      });
      expect(cache.get(length)).toBe(cached);
    }
    cache.dispose();
  });

  it('keeps what it builds inside tf.tidy alive after the scope ends', () => {
    const cache = createPositionTableCache(model);
    let inside: PositionTensors | undefined;
    tf.tidy(() => {
      inside = cache.get(4);
      // Used in an op, as the forward pass does; the result is disposed with the scope, the tables not.
      tf.add(inside.cos, inside.sin);
    });
    if (inside === undefined) throw new Error('the scope did not run');
    expect(inside.cos.isDisposed || inside.sin.isDisposed || inside.causalMask.isDisposed).toBe(false);
    expect(cache.get(4)).toBe(inside);
    cache.dispose();
  });

  it('holds at most maxEntries lengths, evicting (and disposing) the least recently used', () => {
    const before = tf.memory().numTensors;
    const cache = createPositionTableCache(model, 2);
    const two = cache.get(2);
    const three = cache.get(3);
    cache.get(2); // 2 is now the most recently used, so 3 goes first
    cache.get(4);
    expect(cache.size).toBe(2);
    expect(
      three.cos.isDisposed &&
        three.sin.isDisposed &&
        three.rotateHalf.isDisposed &&
        three.causalMask.isDisposed,
    ).toBe(true);
    expect(two.cos.isDisposed).toBe(false);
    expect(cache.get(2)).toBe(two);
    for (const length of [5, 6, 7, 8]) cache.get(length);
    expect(cache.size).toBe(2);
    expect(tf.memory().numTensors).toBe(before + 2 * 4);
    cache.dispose();
    expect(cache.size).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects a bound below one entry', () => {
    expect(() => createPositionTableCache(model, 0)).toThrow(/at least one entry/);
  });
});
