import { MoerlError } from '@moerl/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type FixtureDtype, npyOf } from '../__fixtures__/wire-writers.js';
import { parseNpy } from './npy.js';

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
