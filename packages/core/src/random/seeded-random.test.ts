import { describe, expect, it } from 'vitest';
import { createRandom } from './seeded-random.js';

// A second, independent xoshiro128** written over BigInt, seeded the same way, to check the 32-bit one.
function referenceXoshiro(state: [bigint, bigint, bigint, bigint]) {
  const mask = 0xffffffffn;
  const rotl = (x: bigint, k: bigint) => ((x << k) | (x >> (32n - k))) & mask;
  let [s0, s1, s2, s3] = state;
  return () => {
    const result = (rotl((s1 * 5n) & mask, 7n) * 9n) & mask;
    const t = (s1 << 9n) & mask;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11n);
    return Number(result);
  };
}

function referenceSplitmix(seed: number): () => bigint {
  const mask = 0xffffffffn;
  let s = BigInt(seed >>> 0);
  return () => {
    s = (s + 0x9e3779b9n) & mask;
    let z = s;
    z = ((z ^ (z >> 16n)) * 0x85ebca6bn) & mask;
    z = ((z ^ (z >> 13n)) * 0xc2b2ae35n) & mask;
    return (z ^ (z >> 16n)) & mask;
  };
}

describe('createRandom', () => {
  it('matches an independent BigInt implementation of xoshiro128**', () => {
    for (const seed of [0, 1, 42, 123_456_789]) {
      const mix = referenceSplitmix(seed);
      const reference = referenceXoshiro([mix(), mix(), mix(), mix()]);
      const random = createRandom(seed);
      for (let index = 0; index < 1000; index++) expect(random.nextUint32()).toBe(reference());
    }
  });

  it('is reproducible per seed and differs across seeds', () => {
    const draw = (seed: number) => Array.from({ length: 8 }, createRandom(seed).nextFloat);
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
    expect(draw(2 ** 40)).not.toEqual(draw(0));
  });

  it('draws floats in [0, 1) and unbiased integers', () => {
    const random = createRandom(3);
    const counts = new Array<number>(6).fill(0);
    const draws = 60_000;
    let outOfRange = 0;
    for (let index = 0; index < draws; index++) {
      const value = random.nextFloat();
      if (!(value >= 0 && value < 1)) outOfRange++;
      counts[random.nextInt(6)]!++;
    }
    expect(outOfRange).toBe(0);
    // Chi-square with 5 degrees of freedom; 20.5 is the 0.999 quantile.
    const expected = draws / 6;
    const chiSquare = counts.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
    expect(chiSquare).toBeLessThan(20.5);
  });

  it('draws normals with mean 0 and variance 1', () => {
    const random = createRandom(11);
    const samples = Array.from({ length: 40_000 }, random.nextNormal);
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    const variance = samples.reduce((a, b) => a + (b - mean) ** 2, 0) / (samples.length - 1);
    // Standard errors: 0.005 for the mean, about 0.007 for the variance.
    expect(Math.abs(mean)).toBeLessThan(0.025);
    expect(Math.abs(variance - 1)).toBeLessThan(0.035);
  });

  it('forks independent streams without advancing the parent', () => {
    const parent = createRandom(5);
    const forkA = parent.fork('a').nextUint32();
    expect(parent.fork('a').nextUint32()).toBe(forkA);
    expect(parent.fork('b').nextUint32()).not.toBe(forkA);
    expect(parent.nextUint32()).toBe(createRandom(5).nextUint32());
  });

  it('rejects seeds and bounds it cannot honour', () => {
    expect(() => createRandom(1.5)).toThrow(/safe integer/);
    expect(() => createRandom(0).nextInt(0)).toThrow(/bound/);
  });
});
