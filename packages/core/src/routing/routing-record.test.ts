import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MoerlError } from '../errors/moerl-error.js';
import {
  concatRoutingRecords,
  createRoutingRecord,
  routingRecordProblems,
  routingRow,
  sliceRoutingRecord,
  validateRoutingRecord,
} from './routing-record.js';

// 3 positions × 2 layers × top-2, ids written as [position][layer][k].
const ids = [0, 1, 2, 3, /* p1 */ 1, 2, 0, 3, /* p2 */ 3, 2, 1, 0];
const record = createRoutingRecord({ positions: 3, moeLayers: 2, topK: 2, numExperts: 4 }, ids);

describe('createRoutingRecord', () => {
  it('uses one byte per id up to 256 experts and two above', () => {
    expect(record.experts).toBeInstanceOf(Uint8Array);
    expect(
      createRoutingRecord({ positions: 1, moeLayers: 1, topK: 1, numExperts: 256 }).experts,
    ).toBeInstanceOf(Uint8Array);
    const wide = createRoutingRecord({ positions: 1, moeLayers: 1, topK: 2, numExperts: 300 }, [299, 0]);
    expect(wide.experts).toBeInstanceOf(Uint16Array);
    expect([...wide.experts]).toEqual([299, 0]);
  });

  it('rejects ids of the wrong count or range', () => {
    expect(() =>
      createRoutingRecord({ positions: 2, moeLayers: 1, topK: 2, numExperts: 4 }, [0, 1, 2]),
    ).toThrow(/needs 4 expert ids, found 3/);
    expect(() => createRoutingRecord({ positions: 1, moeLayers: 1, topK: 2, numExperts: 4 }, [0, 4])).toThrow(
      /Expert id 4 at index 1 is outside \[0, 4\)/,
    );
  });
});

describe('validateRoutingRecord', () => {
  const codeOf = (run: () => void) => {
    try {
      run();
      return 'ok';
    } catch (error) {
      return MoerlError.isInstance(error) ? error.code : 'other';
    }
  };

  it('accepts a well-formed record', () => {
    expect(
      codeOf(() => validateRoutingRecord(record, { numExperts: 4, moeLayers: 2, topK: 2, positions: 3 })),
    ).toBe('ok');
  });

  it('names each problem: shape, length, range, duplicates', () => {
    expect(routingRecordProblems(record, { numExperts: 4, moeLayers: 3 })).toEqual([
      'moeLayers must be 3, found 2',
    ]);
    expect(routingRecordProblems(record, { numExperts: 4, topK: 1 })).toEqual(['topK must be 1, found 2']);
    expect(
      routingRecordProblems({ ...record, experts: record.experts.subarray(1) }, { numExperts: 4 }),
    ).toEqual(['experts holds 11 ids; shape [3 positions][2 layers][top-2] needs 12']);
    expect(routingRecordProblems(record, { numExperts: 3 })).toEqual([
      'position 0, layer 1: expert id 3 is outside [0, 3)',
      'position 1, layer 1: expert id 3 is outside [0, 3)',
      'position 2, layer 0: expert id 3 is outside [0, 3)',
    ]);
    const duplicated = createRoutingRecord(
      { positions: 1, moeLayers: 2, topK: 2, numExperts: 4 },
      [0, 1, 2, 2],
    );
    expect(routingRecordProblems(duplicated, { numExperts: 4 })).toEqual([
      'position 0, layer 1: expert 2 chosen twice',
    ]);
    expect(
      routingRecordProblems(
        { ...record, experts: new Int32Array(12) as unknown as Uint8Array },
        { numExperts: 4 },
      ),
    ).toEqual(['experts must be a Uint8Array or Uint16Array']);
  });

  it('throws ROUTING_SHAPE with the problems in the message', () => {
    expect(codeOf(() => validateRoutingRecord(record, { numExperts: 4, positions: 5 }))).toBe(
      'ROUTING_SHAPE',
    );
    expect(() => validateRoutingRecord(record, { numExperts: 4, positions: 5 })).toThrow(
      /positions must be 5, found 3/,
    );
  });
});

describe('slice and concat', () => {
  it('slices positions and copies', () => {
    const middle = sliceRoutingRecord(record, 1, 2);
    expect(middle.positions).toBe(1);
    expect([...middle.experts]).toEqual([1, 2, 0, 3]);
    middle.experts[0] = 3;
    expect(record.experts[4]).toBe(1);
    expect([...routingRow(record, 2, 1)]).toEqual([1, 0]);
    expect(() => sliceRoutingRecord(record, 2, 4)).toThrow(/Cannot slice positions \[2, 4\)/);
  });

  it('concat inverts slicing at any cut (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), (a, b) => {
        const [cut1, cut2] = a <= b ? [a, b] : [b, a];
        const joined = concatRoutingRecords([
          sliceRoutingRecord(record, 0, cut1),
          sliceRoutingRecord(record, cut1, cut2),
          sliceRoutingRecord(record, cut2),
        ]);
        expect(joined).toEqual(record);
      }),
    );
  });

  it('refuses to join records of different layouts and widens to uint16 when needed', () => {
    const other = createRoutingRecord({ positions: 1, moeLayers: 1, topK: 2, numExperts: 4 }, [0, 1]);
    expect(() => concatRoutingRecords([record, other])).toThrow(/Record 1 has 1 layers × top-2/);
    const wide = createRoutingRecord(
      { positions: 1, moeLayers: 2, topK: 2, numExperts: 300 },
      [299, 1, 2, 3],
    );
    const joined = concatRoutingRecords([record, wide]);
    expect(joined.experts).toBeInstanceOf(Uint16Array);
    expect(joined.experts[12]).toBe(299);
    expect(() => concatRoutingRecords([])).toThrow(MoerlError);
  });

  it('carries the weight version through create, slice and concat of one version', () => {
    const stamped = { ...record, weightVersion: 7 };
    expect(
      createRoutingRecord({ positions: 1, moeLayers: 1, topK: 1, numExperts: 2, weightVersion: 7 }, [1]),
    ).toMatchObject({ weightVersion: 7 });
    expect(sliceRoutingRecord(stamped, 1, 3).weightVersion).toBe(7);
    const joined = concatRoutingRecords([sliceRoutingRecord(stamped, 0, 1), sliceRoutingRecord(stamped, 1)]);
    expect(joined).toEqual(stamped);
    expect('weightVersion' in sliceRoutingRecord(record, 0, 1)).toBe(false);
  });

  it('refuses to join routes of different versions, and leaves the version unknown when one is unknown', () => {
    const early = { ...sliceRoutingRecord(record, 0, 2), weightVersion: 3 };
    const late = { ...sliceRoutingRecord(record, 2), weightVersion: 4 };
    try {
      concatRoutingRecords([early, late]);
      expect.unreachable();
    } catch (error) {
      expect(MoerlError.isInstance(error, 'ROUTING_STALE')).toBe(true);
      expect((error as MoerlError).message).toMatch(/record 0 has version 3, record 1 has version 4/);
    }
    const unknown = concatRoutingRecords([early, sliceRoutingRecord(record, 2)]);
    expect(unknown.weightVersion).toBeUndefined();
    expect([...unknown.experts]).toEqual([...record.experts]);
  });
});
