import { MoerlError } from '@moerl/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type FixtureDtype, integerBytes, npyOf } from '../__fixtures__/wire-writers.js';
import { type NpyWriteDtype, parseNpy, writeNpy } from './npy.js';

describe('parseNpy', () => {
  const values = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const shape = [2, 3, 2];

  it.each<FixtureDtype>(['|u1', '<u2', '>u2', '<i2', '>i2', '<i4', '>i4'])('reads %s in C order', (dtype) => {
    const array = parseNpy(npyOf(values, shape, dtype));
    expect(array.shape).toEqual(shape);
    expect(array.descr).toBe(dtype);
    expect([...array.values]).toEqual(values);
  });

  it.each([1, 2, 3] as const)('reads format version %i.0', (version) => {
    expect([...parseNpy(npyOf(values, shape, '<u2', { version })).values]).toEqual(values);
  });

  it('reorders Fortran-ordered data to C order', () => {
    const bytes = npyOf(values, shape, '|u1', { fortranOrder: true });
    // The raw data really is column-major: element (0,0,1) = 1 is not the second byte.
    expect(bytes.at(-12 + 1)).not.toBe(1);
    expect([...parseNpy(bytes).values]).toEqual(values);
  });

  it('reads negative int16 and int32 values (−1 markers)', () => {
    expect([...parseNpy(npyOf([-1, 5, -1, 300], [2, 2], '>i2')).values]).toEqual([-1, 5, -1, 300]);
    expect([...parseNpy(npyOf([-1, 70000], [2], '<i4')).values]).toEqual([-1, 70000]);
  });

  it('reads big values in big-endian uint16 (ids above 255)', () => {
    expect([...parseNpy(npyOf([256, 511, 65535], [3], '>u2')).values]).toEqual([256, 511, 65535]);
  });

  it('round-trips random arrays in every layout (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }),
        fc.constantFrom<FixtureDtype>('|u1', '<u2', '>u2', '<i4', '>i4'),
        fc.boolean(),
        fc.constantFrom(1, 2, 3),
        fc.integer(),
        (dims, dtype, fortranOrder, version, salt) => {
          const count = dims.reduce((a, b) => a * b, 1);
          const data = Array.from({ length: count }, (_, index) => Math.abs(salt + index * 37) % 200);
          const array = parseNpy(npyOf(data, dims, dtype, { fortranOrder, version: version as 1 | 2 | 3 }));
          expect(array.shape).toEqual(dims);
          expect([...array.values]).toEqual(data);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('rejects bad magic, unknown versions, float dtypes and short data', () => {
    const good = npyOf(values, shape, '|u1');
    const badMagic = good.slice();
    badMagic[1] = 0;
    expect(() => parseNpy(badMagic)).toThrow(/magic/);
    const badVersion = good.slice();
    badVersion[6] = 4;
    expect(() => parseNpy(badVersion)).toThrow(/version 4\.0/);
    const float = good.slice();
    const at = new TextDecoder('latin1').decode(good).indexOf('|u1');
    float.set([0x3c, 0x66, 0x34], at); // '<f4'
    expect(() => parseNpy(float)).toThrow(/dtype '<f4'/);
    expect(() => parseNpy(good.subarray(0, good.length - 1))).toThrow(/needs 12 data bytes, found 11/);
    try {
      parseNpy(badMagic);
    } catch (error) {
      expect(MoerlError.isInstance(error, 'ROUTING_SHAPE')).toBe(true);
    }
  });
});

/** Reads a version 1.0 `.npy` by hand (byte offsets from NumPy's format description), not with parseNpy. */
function readByHand(bytes: Uint8Array): { header: string; data: Uint8Array } {
  expect([...bytes.subarray(0, 8)]).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  const headerLength = bytes[8]! + 256 * bytes[9]!;
  return {
    header: String.fromCharCode(...bytes.subarray(10, 10 + headerLength)),
    data: bytes.subarray(10 + headerLength),
  };
}

describe('writeNpy', () => {
  // Bytes of `np.save` (NumPy 2.4.6), kept as hex so the writer is checked against NumPy itself.
  const numpyCases: [string, number[], number[], NpyWriteDtype, string][] = [
    [
      'uint8 routing (3, 2, 2)',
      [1, 2, 0, 0, 3, 4, 0, 0, 5, 255, 0, 0],
      [3, 2, 2],
      '|u1',
      `934e554d5059010076007b276465736372273a20277c7531272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c20322c2032292c207d${'20'.repeat(55)}0a010200000304000005ff0000`,
    ],
    [
      'uint16 routing (2, 2, 2)',
      [299, 3, 0, 0, 256, 65535, 0, 0],
      [2, 2, 2],
      '<u2',
      `934e554d5059010076007b276465736372273a20273c7532272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c20322c2032292c207d${'20'.repeat(55)}0a2b010300000000000001ffff00000000`,
    ],
    [
      'int32 with −1, one axis',
      [7, -1, 70000],
      [3],
      '<i4',
      `934e554d5059010076007b276465736372273a20273c6934272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c292c207d${'20'.repeat(60)}0a07000000ffffffff70110100`,
    ],
    [
      'an aligned header still gets 64 spaces of padding',
      [],
      [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 100],
      '<u2',
      `934e554d50590100b6007b276465736372273a20273c7532272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028302c20312c20312c20312c20312c20312c20312c20312c20312c20312c20312c20312c20312c20313030292c207d${'20'.repeat(84)}0a`,
    ],
  ];

  it.each(numpyCases)('writes what np.save writes: %s', (_, values, shape, dtype, bytes) => {
    const array = dtype === '<i4' ? Int32Array.from(values) : Uint16Array.from(values);
    expect(Buffer.from(writeNpy(array, shape, dtype)).toString('hex')).toBe(bytes);
  });

  it('agrees byte for byte with the fixture writer and parses back (property, routing shapes)', () => {
    fc.assert(
      fc.property(
        fc.tuple(
          fc.integer({ min: 0, max: 5000 }),
          fc.integer({ min: 1, max: 6 }),
          fc.integer({ min: 1, max: 4 }),
        ),
        fc.constantFrom<NpyWriteDtype>('|u1', '<u2', '<i4'),
        fc.integer({ min: 0, max: 1000 }),
        ([rows, layers, topK], dtype, salt) => {
          const shape = [Math.min(rows, 40), layers, topK];
          const count = shape[0]! * layers * topK;
          const limit = dtype === '|u1' ? 256 : 65536;
          const values = Array.from({ length: count }, (_, index) => (salt + index * 97) % limit);
          const typed = dtype === '|u1' ? Uint8Array.from(values) : Int32Array.from(values);
          const bytes = writeNpy(typed, shape, dtype);
          // Rank 3 with layers and top-k below 1000: NumPy's spare space never crosses the 128-byte block
          // the fixture writer (which omits it) also fills, so both write the same bytes.
          expect(bytes).toEqual(npyOf(values, shape, dtype));
          const { header, data } = readByHand(bytes);
          expect((10 + header.length) % 64).toBe(0);
          expect(header.endsWith('\n')).toBe(true);
          expect(header).toContain(`'shape': (${shape.join(', ')})`);
          expect(data).toEqual(integerBytes(values, dtype));
          const parsed = parseNpy(bytes);
          expect(parsed.shape).toEqual(shape);
          expect(parsed.descr).toBe(dtype);
          expect([...parsed.values]).toEqual(values);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('writes the growth-axis spare space NumPy reserves, so headers of long first axes still align', () => {
    const long = readByHand(writeNpy(new Uint8Array(0), [0, 10 ** 15, 2], '|u1')).header;
    const short = readByHand(writeNpy(new Uint8Array(0), [0, 1, 2], '|u1')).header;
    // The first axis's digits are taken out of the spare space: both headers have the same length.
    expect(long.length).toBe(short.length);
    expect(short).toMatch(/'shape': \(0, 1, 2\), \} {20}/);
  });

  it('refuses values outside the dtype and a shape that does not match the values, naming the field', () => {
    expect(() => writeNpy(Int32Array.of(256), [1], '|u1')).toThrow(
      /values\[0\]: \|u1 holds \[0, 255\], found 256/,
    );
    expect(() => writeNpy(Int32Array.of(-1), [1], '<u2')).toThrow(/values\[0\]/);
    expect(() => writeNpy(Int32Array.of(1, 2), [3], '<i4')).toThrow(/shape \(3\) holds 3 items, found 2/);
    expect(() => writeNpy(Int32Array.of(1), [1.5], '<i4')).toThrow(/shape: expected non-negative integers/);
    try {
      writeNpy(Int32Array.of(1, 2), [3], '<i4');
    } catch (error) {
      expect(MoerlError.isInstance(error, 'INVALID_ARGUMENT')).toBe(true);
    }
  });
});
