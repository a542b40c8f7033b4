import { createRoutingRecord } from '@moerl/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planLayerRouting, topKIndices } from './routing-plan.js';

describe('topKIndices', () => {
  it('equals a stable sort by value (descending), so ties go to the lower index', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -3, max: 3 }), { minLength: 1, maxLength: 12 }),
        fc.nat(),
        (values, seed) => {
          const k = 1 + (seed % values.length);
          const out = new Int32Array(k);
          topKIndices(values, 0, values.length, k, out);
          const sorted = values.map((value, index) => ({ value, index })).sort((a, b) => b.value - a.value);
          expect([...out]).toEqual(sorted.slice(0, k).map((entry) => entry.index));
        },
      ),
    );
  });
});

describe('planLayerRouting', () => {
  it('replays where a record covers a position, routes freely elsewhere and skips padding', () => {
    // Two sequences padded to 3 positions; 4 experts, top-2, one MoE layer.
    const layout = { size: 2, length: 3, fed: [3, 2] };
    // Sequence 0 replays only its first two positions; sequence 1 has no record.
    const replay = [
      createRoutingRecord({ positions: 2, moeLayers: 1, topK: 2, numExperts: 4 }, [3, 1, 0, 2]),
      undefined,
    ];
    const probabilities = Float32Array.from([
      ...[0.1, 0.2, 0.3, 0.4],
      ...[0.1, 0.2, 0.3, 0.4],
      ...[0.5, 0.1, 0.3, 0.1], // seq 0, position 2: free → experts 0, 2
      ...[0.2, 0.2, 0.5, 0.1], // seq 1, position 0: free → 2, then 0 (tie with 1 goes to the lower id)
      ...[0.0, 0.6, 0.0, 0.4], // seq 1, position 1: free → 1, 3
      ...[0.25, 0.25, 0.25, 0.25], // padding
    ]);
    const chosen = new Int32Array(6 * 2).fill(-1);
    const plan = planLayerRouting({
      layout,
      numExperts: 4,
      topK: 2,
      moeLayers: 1,
      ordinal: 0,
      replay,
      probabilities,
      chosen,
    });
    expect([...chosen]).toEqual([3, 1, 0, 2, 0, 2, 2, 0, 1, 3, -1, -1]);
    expect([...plan.padding]).toEqual([0, 0, 0, 0, 0, 1]);
    expect(plan.expertRows.map((rows) => [...rows])).toEqual([
      [1, 2, 3],
      [0, 4],
      [1, 2, 3],
      [0, 4],
    ]);
    expect([...plan.mask.subarray(20, 24)]).toEqual([0, 0, 0, 0]);
  });
});
