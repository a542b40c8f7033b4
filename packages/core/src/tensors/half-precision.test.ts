import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MoerlError } from '../errors/moerl-error.js';
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  fromFloat32,
  roundToBfloat16,
  toFloat32,
} from './half-precision.js';

/** A Float32Array holding exactly these float32 bit patterns (lets tests build NaNs with chosen sign/payload). */
function floatsFromBits(bits: readonly number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer);
}

function bitsOf(values: Float32Array): number[] {
  return [...new Uint32Array(values.buffer, values.byteOffset, values.length)];
}

// ---------------------------------------------------------------------------------------------------------
// Reference float16: decode every pattern arithmetically (powers of two, no bit tricks), then round by
// nearest-neighbour search.
// ---------------------------------------------------------------------------------------------------------

function referenceDecodeF16(bits: number): number {
  const sign = bits >= 0x8000 ? -1 : 1;
  const exponent = Math.floor((bits % 0x8000) / 1024);
  const mantissa = bits % 1024;
  if (exponent === 31) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

// Non-negative float16 values by pattern 0x0000..0x7c00, increasing. The entry at 0x7c00 stands for the value
// 65536 the format would have next if its exponent did not end: rounding onto it means overflow to Inf.
const F16_LADDER: number[] = [];
for (let bits = 0; bits < 0x7c00; bits++) F16_LADDER.push(referenceDecodeF16(bits));
F16_LADDER.push(65536);

function referenceToF16(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const signBit = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const magnitude = Math.abs(x);
  if (magnitude >= 65536) return signBit | 0x7c00;
  // Largest ladder index whose value is ≤ magnitude.
  let low = 0;
  let high = F16_LADDER.length - 1;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (F16_LADDER[middle]! <= magnitude) low = middle;
    else high = middle - 1;
  }
  const below = F16_LADDER[low]!;
  if (below === magnitude) return signBit | low;
  const above = F16_LADDER[low + 1]!;
  // Float64 differences of float32-range neighbours are exact, so this compares exact distances.
  const downDistance = magnitude - below;
  const upDistance = above - magnitude;
  const index =
    downDistance < upDistance ? low : upDistance < downDistance ? low + 1 : low % 2 === 0 ? low : low + 1;
  return signBit | index;
}

// ---------------------------------------------------------------------------------------------------------
// Reference bfloat16: exact integer rounding with BigInt on the float64 representation of the input.
// ---------------------------------------------------------------------------------------------------------

function referenceRoundBf16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const raw = view.getBigUint64(0);
  const negative = raw >> 63n === 1n;
  const exponent = Number((raw >> 52n) & 0x7ffn); // x comes from float32, so it is a float64 normal
  const significand = (raw & ((1n << 52n) - 1n)) | (1n << 52n); // |x| = significand · 2^(exponent - 1075)
  const binade = exponent - 1023; // floor(log2 |x|)
  // bfloat16 keeps 8 significant bits; below 2^-126 the spacing stays that of the subnormals, 2^-133.
  const quantumExponent = Math.max(binade, -126) - 7;
  const shift = BigInt(quantumExponent - (exponent - 1075));
  let kept = significand >> shift;
  const dropped = significand - (kept << shift);
  const half = 1n << (shift - 1n);
  if (dropped > half || (dropped === half && kept % 2n === 1n)) kept += 1n;
  const magnitude = Number(kept) * 2 ** quantumExponent;
  const result = magnitude >= 2 ** 128 ? Number.POSITIVE_INFINITY : magnitude;
  return negative ? -result : result;
}

/** Float32 values, with extra weight on exact ties and their neighbours for a 16-bit format. */
function float32Inputs(tieArbitrary: fc.Arbitrary<number>): fc.Arbitrary<number> {
  return fc.oneof(
    fc.float(),
    fc.float({ min: -70000, max: 70000 }),
    fc.float({ min: Math.fround(-1e-4), max: Math.fround(1e-4) }),
    tieArbitrary,
  );
}

// Float32 bits lying exactly half-way between two float16 neighbours, or one float32 ulp either side.
const f16Ties = fc
  .tuple(fc.integer({ min: 0, max: 0x7bff }), fc.constantFrom(-1, 0, 1), fc.boolean())
  .map(([bits, nudge, negative]) => {
    const middle = (F16_LADDER[bits]! + F16_LADDER[bits + 1]!) / 2; // exact in float32
    const tieBits = bitsOf(Float32Array.of(middle))[0]!;
    const value = floatsFromBits([tieBits + nudge])[0]!;
    return negative ? -value : value;
  });

// Float32 bits with the low half exactly 0x8000 (a bfloat16 tie), or one ulp either side.
const bf16Ties = fc
  .tuple(fc.integer({ min: 0, max: 0x7f7f }), fc.constantFrom(-1, 0, 1), fc.boolean())
  .map(([high, nudge, negative]) => {
    const value = floatsFromBits([high * 0x10000 + 0x8000 + nudge])[0]!;
    return negative ? -value : value;
  });

describe('float16 scalars', () => {
  it.each([
    ['+0', 0, 0x0000],
    ['-0', -0, 0x8000],
    ['1', 1, 0x3c00],
    ['-2', -2, 0xc000],
    ['largest finite 65504', 65504, 0x7bff],
    ['65519.99 rounds down to 65504', 65519.99, 0x7bff],
    ['65520 ties to even → Inf', 65520, 0x7c00],
    ['-65520 → -Inf', -65520, 0xfc00],
    ['smallest subnormal 2^-24', 2 ** -24, 0x0001],
    ['largest subnormal 1023·2^-24', 1023 * 2 ** -24, 0x03ff],
    ['smallest normal 2^-14', 2 ** -14, 0x0400],
    ['2^-25 ties to even → 0', 2 ** -25, 0x0000],
    ['-2^-25 → -0', -(2 ** -25), 0x8000],
    ['just above 2^-25 → 2^-24', 2 ** -25 * (1 + 2 ** -20), 0x0001],
    ['3·2^-25 ties to even → 2·2^-24', 3 * 2 ** -25, 0x0002],
    ['5·2^-25 ties to even → 2·2^-24', 5 * 2 ** -25, 0x0002],
    ['1 + 2^-11 ties to even → 1', 1 + 2 ** -11, 0x3c00],
    ['1 + 3·2^-11 ties to even → 1 + 2^-9', 1 + 3 * 2 ** -11, 0x3c02],
    ['float32 subnormal → 0', 2 ** -140, 0x0000],
    ['Inf', Number.POSITIVE_INFINITY, 0x7c00],
    ['-Inf', Number.NEGATIVE_INFINITY, 0xfc00],
    ['float32 max → Inf', 3.4028234663852886e38, 0x7c00],
  ])('%s', (_name, value, bits) => {
    expect(float32ToFloat16Bits(value)).toBe(bits);
  });

  it('decodes known patterns', () => {
    expect(Object.is(float16BitsToFloat32(0x0000), 0)).toBe(true);
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).toBe(true);
    expect(float16BitsToFloat32(0x3c00)).toBe(1);
    expect(float16BitsToFloat32(0xc000)).toBe(-2);
    expect(float16BitsToFloat32(0x7bff)).toBe(65504);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16BitsToFloat32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(float16BitsToFloat32(0x7c00)).toBe(Number.POSITIVE_INFINITY);
    expect(float16BitsToFloat32(0xfc00)).toBe(Number.NEGATIVE_INFINITY);
    expect(float16BitsToFloat32(0x7e00)).toBeNaN();
    expect(float16BitsToFloat32(0x7c01)).toBeNaN();
  });

  it('maps NaN to a quiet NaN', () => {
    const bits = float32ToFloat16Bits(Number.NaN);
    expect(bits & 0x7c00).toBe(0x7c00);
    expect(bits & 0x0200).toBe(0x0200);
  });

  it('keeps NaN sign, quiets signalling NaNs whose payload sits in the low bits (array path)', () => {
    const tensor = fromFloat32(floatsFromBits([0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001]), 'F16', [4]);
    expect([...tensor.data]).toEqual([0x7e00, 0xfe00, 0x7e00, 0xfe00]);
  });

  it('round-trips all 65536 patterns; values match a Math.pow decoder', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = float16BitsToFloat32(bits);
      const reference = referenceDecodeF16(bits);
      if (Number.isNaN(reference)) {
        expect(value).toBeNaN();
        expect(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(value)))).toBe(true);
        continue;
      }
      if (!Object.is(value, reference)) expect(value).toBe(reference);
      const back = float32ToFloat16Bits(value);
      if (back !== bits) expect(back).toBe(bits);
    }
  });

  it('round-trips all 65536 patterns through toFloat32/fromFloat32, NaN payloads quieted', () => {
    const all = new Uint16Array(0x10000);
    for (let bits = 0; bits < 0x10000; bits++) all[bits] = bits;
    const values = toFloat32({ dtype: 'F16', shape: [0x10000], data: all });
    const back = fromFloat32(values, 'F16', [0x10000]).data;
    for (let bits = 0; bits < 0x10000; bits++) {
      const nanPattern = (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
      const expected = nanPattern ? bits | 0x0200 : bits;
      if (back[bits] !== expected) expect(back[bits]).toBe(expected);
    }
  });

  it('matches the nearest-neighbour reference on random float32 inputs', () => {
    fc.assert(
      fc.property(float32Inputs(f16Ties), (x) => {
        const actual = float32ToFloat16Bits(x);
        const expected = referenceToF16(x);
        if (Number.isNaN(expected)) return (actual & 0x7c00) === 0x7c00 && (actual & 0x3ff) !== 0;
        return actual === expected;
      }),
      { numRuns: 20_000 },
    );
  });
});

describe('bfloat16 scalars', () => {
  it.each([
    ['+0', 0, 0x0000],
    ['-0', -0, 0x8000],
    ['1', 1, 0x3f80],
    ['-2', -2, 0xc000],
    ['1 + 2^-8 ties to even → 1', 1 + 2 ** -8, 0x3f80],
    ['1 + 3·2^-8 ties to even → 1 + 2^-6', 1 + 3 * 2 ** -8, 0x3f82],
    ['1 + 2^-8 + 2^-20 rounds up', 1 + 2 ** -8 + 2 ** -20, 0x3f81],
    ['float32 max → Inf', 3.4028234663852886e38, 0x7f80],
    ['largest bf16', 3.3895313892515355e38, 0x7f7f],
    ['float32 subnormal 2^-133 is a bf16 subnormal', 2 ** -133, 0x0001],
    ['Inf', Number.POSITIVE_INFINITY, 0x7f80],
    ['-Inf', Number.NEGATIVE_INFINITY, 0xff80],
  ])('%s', (_name, value, bits) => {
    expect(float32ToBfloat16Bits(value)).toBe(bits);
  });

  it('decodes known patterns', () => {
    expect(bfloat16BitsToFloat32(0x3f80)).toBe(1);
    expect(bfloat16BitsToFloat32(0xc000)).toBe(-2);
    expect(Object.is(bfloat16BitsToFloat32(0x8000), -0)).toBe(true);
    expect(bfloat16BitsToFloat32(0x7f80)).toBe(Number.POSITIVE_INFINITY);
    expect(bfloat16BitsToFloat32(0x7fc0)).toBeNaN();
  });

  it('maps NaN to a quiet NaN, keeping sign; signalling low-payload NaN does not become Inf', () => {
    expect(float32ToBfloat16Bits(Number.NaN) & 0x7fc0).toBe(0x7fc0);
    const tensor = fromFloat32(floatsFromBits([0x7fc00000, 0xffc00001, 0x7f800001]), 'BF16', [3]);
    expect([...tensor.data]).toEqual([0x7fc0, 0xffc0, 0x7fc0]);
  });

  it('round-trips all 65536 patterns', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = bfloat16BitsToFloat32(bits);
      const nanPattern = (bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0;
      const back = float32ToBfloat16Bits(value);
      if (nanPattern) expect(Number.isNaN(value)).toBe(true);
      else if (back !== bits) expect(back).toBe(bits);
    }
  });

  it('matches the BigInt reference on random float32 inputs', () => {
    fc.assert(
      fc.property(float32Inputs(bf16Ties), (x) => {
        const actual = bfloat16BitsToFloat32(float32ToBfloat16Bits(x));
        const expected = referenceRoundBf16(Math.fround(x));
        return Number.isNaN(expected) ? Number.isNaN(actual) : Object.is(actual, expected);
      }),
      { numRuns: 20_000 },
    );
  });
});

describe('array conversions', () => {
  it('roundToBfloat16 equals the scalar round trip element-wise and keeps NaN bits quiet', () => {
    fc.assert(
      fc.property(fc.float32Array({ maxLength: 64 }), (values) => {
        const rounded = roundToBfloat16(values);
        if (rounded === values || rounded.length !== values.length) return false;
        return values.every((value, index) => {
          const expected = bfloat16BitsToFloat32(float32ToBfloat16Bits(value));
          return Number.isNaN(value) ? Number.isNaN(rounded[index]!) : Object.is(rounded[index], expected);
        });
      }),
      { numRuns: 500 },
    );
    expect(bitsOf(roundToBfloat16(floatsFromBits([0xff800001, 0x3f808000, 0x3f818000])))).toEqual([
      0xffc00000, 0x3f800000, 0x3f820000,
    ]);
  });

  it('toFloat32 converts every dtype and never aliases the input', () => {
    const f32 = Float32Array.of(1.5, -2);
    const copy = toFloat32({ dtype: 'F32', shape: [2], data: f32 });
    expect(copy).toEqual(f32);
    expect(copy).not.toBe(f32);
    expect([
      ...toFloat32({ dtype: 'F16', shape: [3], data: Uint16Array.of(0x3c00, 0xc000, 0x0001) }),
    ]).toEqual([1, -2, 2 ** -24]);
    expect([...toFloat32({ dtype: 'BF16', shape: [2], data: Uint16Array.of(0x3f80, 0xc000) })]).toEqual([
      1, -2,
    ]);
    expect([...toFloat32({ dtype: 'I64', shape: [3], data: BigInt64Array.of(-3n, 2n ** 40n, 0n) })]).toEqual([
      -3,
      2 ** 40,
      0,
    ]);
    expect([...toFloat32({ dtype: 'I32', shape: [2], data: Int32Array.of(-7, 16777217) })]).toEqual([
      -7, 16777216,
    ]);
    expect([...toFloat32({ dtype: 'U16', shape: [1], data: Uint16Array.of(65535) })]).toEqual([65535]);
    expect([...toFloat32({ dtype: 'U8', shape: [2], data: Uint8Array.of(0, 255) })]).toEqual([0, 255]);
  });

  it('fromFloat32 builds each float dtype with a copied shape and data', () => {
    const values = Float32Array.of(1, -2, 65520);
    const shape = [3];
    const f32 = fromFloat32(values, 'F32', shape);
    expect(f32.dtype).toBe('F32');
    expect(f32.data).not.toBe(values);
    expect(f32.shape).not.toBe(shape);
    expect([...fromFloat32(values, 'F16', shape).data]).toEqual([0x3c00, 0xc000, 0x7c00]);
    expect([...fromFloat32(values, 'BF16', shape).data]).toEqual([0x3f80, 0xc000, 0x4780]);
  });

  it('fromFloat32 rejects a length that does not match the shape', () => {
    expect(() => fromFloat32(Float32Array.of(1, 2), 'F16', [3])).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
    try {
      fromFloat32(Float32Array.of(1), 'F32', [2, 2]);
      expect.unreachable();
    } catch (error) {
      expect(MoerlError.isInstance(error, 'INVALID_ARGUMENT')).toBe(true);
    }
  });
});
