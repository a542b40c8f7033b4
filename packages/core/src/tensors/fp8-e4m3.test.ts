import { describe, expect, it } from 'vitest';
import { E4M3_MAX, e4m3BitsToFloat32, float32ToE4m3Bits, roundToE4m3 } from './fp8-e4m3.js';

// The positive E4M3 values written out from the OCP FP8 specification's definition, independently of the
// code under test: subnormals k·2^-9 (k = 0..7), normals (8 + m)·2^(e - 10) for exponent field e = 1..15 and
// mantissa m = 0..7, except e = 15, m = 7 (NaN). Index = the code's low 7 bits.
const POSITIVE: number[] = [];
for (let code = 0; code < 0x7f; code++) {
  const e = code >> 3;
  const m = code & 7;
  POSITIVE.push(e === 0 ? m / 512 : (8 + m) * 2 ** (e - 10));
}

/** Brute force: the nearest table value, ties to the even code. */
function nearest(x: number): number {
  const magnitude = Math.min(Math.abs(x), E4M3_MAX);
  let best = 0;
  for (let code = 1; code < POSITIVE.length; code++) {
    const distance = Math.abs(POSITIVE[code]! - magnitude);
    const bestDistance = Math.abs(POSITIVE[best]! - magnitude);
    if (distance < bestDistance || (distance === bestDistance && code % 2 === 0)) best = code;
  }
  return Math.sign(x) * POSITIVE[best]!;
}

describe('FP8 E4M3', () => {
  it('decodes all 256 codes as the specification defines them', () => {
    for (let code = 0; code < 256; code++) {
      const low = code & 0x7f;
      const value = e4m3BitsToFloat32(code);
      if (low === 0x7f) expect(value).toBeNaN();
      else expect(value).toBe((code & 0x80 ? -1 : 1) * POSITIVE[low]!);
    }
    // Published anchors: max 448 = 0x7e, 1.0 = 0x38, smallest normal 2^-6 = 0x08, smallest subnormal 2^-9.
    expect(e4m3BitsToFloat32(0x7e)).toBe(448);
    expect(e4m3BitsToFloat32(0x38)).toBe(1);
    expect(e4m3BitsToFloat32(0x08)).toBe(2 ** -6);
    expect(e4m3BitsToFloat32(0x01)).toBe(2 ** -9);
  });

  it('every finite code round-trips through its value', () => {
    for (let code = 0; code < 256; code++) {
      if ((code & 0x7f) === 0x7f) continue;
      expect(float32ToE4m3Bits(e4m3BitsToFloat32(code))).toBe(code);
    }
  });

  it('rounds to nearest, ties to even, at every midpoint and between', () => {
    for (let code = 0; code + 1 < POSITIVE.length; code++) {
      const low = POSITIVE[code]!;
      const high = POSITIVE[code + 1]!;
      const midpoint = (low + high) / 2;
      const even = code % 2 === 0 ? low : high;
      expect(roundToE4m3(midpoint)).toBe(even);
      expect(roundToE4m3(-midpoint)).toBe(-even);
      for (const t of [0.01, 0.3, 0.49999, 0.50001, 0.7, 0.99]) {
        const x = low + t * (high - low);
        expect(roundToE4m3(x)).toBe(nearest(x));
      }
    }
    // Hand-checked ties: 1.0625 sits between 1 (m=0) and 1.125 (m=1) → 1; 1.1875 → 1.25; 2^-10 → 0;
    // 3·2^-10 between 2^-9 (k=1) and 2^-8 (k=2) → 2^-8.
    expect(roundToE4m3(1.0625)).toBe(1);
    expect(roundToE4m3(1.1875)).toBe(1.25);
    expect(roundToE4m3(2 ** -10)).toBe(0);
    expect(roundToE4m3(3 * 2 ** -10)).toBe(2 ** -8);
  });

  it('matches the brute-force table on random values across the range', () => {
    let seed = 12345;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let trial = 0; trial < 5000; trial++) {
      const x = (next() < 0.5 ? -1 : 1) * 2 ** (next() * 20 - 12);
      expect(roundToE4m3(x)).toBe(nearest(x));
    }
  });

  it('saturates instead of producing NaN, and keeps NaN and signed zero', () => {
    expect(roundToE4m3(449)).toBe(448);
    expect(roundToE4m3(464)).toBe(448);
    expect(roundToE4m3(1e30)).toBe(448);
    expect(roundToE4m3(Number.POSITIVE_INFINITY)).toBe(448);
    expect(roundToE4m3(Number.NEGATIVE_INFINITY)).toBe(-448);
    expect(float32ToE4m3Bits(1e9)).toBe(0x7e);
    expect(float32ToE4m3Bits(-1e9)).toBe(0xfe);
    expect(roundToE4m3(Number.NaN)).toBeNaN();
    expect(float32ToE4m3Bits(Number.NaN)).toBe(0x7f);
    expect(Object.is(roundToE4m3(-0), -0)).toBe(true);
    expect(float32ToE4m3Bits(-1e-6)).toBe(0x80);
  });
});
