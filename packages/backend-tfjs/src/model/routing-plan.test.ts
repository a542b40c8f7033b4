import { createRoutingRecord } from '@moerl/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mixReplayedRow, planLayerRouting, topKIndices } from './routing-plan.js';

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

  it('picks as k rounds of “the largest not yet taken, first on ties” would, NaN and offsets included', () => {
    const selection = (values: number[], k: number) => {
      const taken: number[] = [];
      for (let round = 0; round < k; round++) {
        let best = -1;
        values.forEach((value, index) => {
          if (!taken.includes(index) && (best === -1 || value > values[best]!)) best = index;
        });
        taken.push(best);
      }
      return taken;
    };
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(-1, 0, -0, 0.5, 2, Number.NaN, Number.POSITIVE_INFINITY), {
          minLength: 1,
          maxLength: 70,
        }),
        fc.nat(),
        fc.nat({ max: 3 }),
        (values, seed, offset) => {
          const k = 1 + (seed % Math.min(values.length, 9));
          const out = new Int32Array(k);
          topKIndices([...Array(offset).fill(9), ...values], offset, values.length, k, out);
          expect([...out]).toEqual(selection(values, k));
        },
      ),
      { numRuns: 500 },
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

describe('partial replay', () => {
  // One sequence of 3 rows, 4 experts, top-2, one MoE layer; every row replayed.
  const layout = { size: 1, length: 3, fed: [3] };
  const probabilities = Float32Array.from([
    ...[0.4, 0.3, 0.2, 0.1], // trainer top-2: 0, 1 (k-th 0.3)
    ...[0.1, 0.5, 0.25, 0.15], // trainer top-2: 1, 2 (k-th 0.25)
    ...[0.1, 0.2, 0.3, 0.4], // trainer top-2: 3, 2 (k-th 0.3)
  ]);
  const engine = [3, 0, 2, 1, 3, 0];
  const plan = (minScoreRatio: number | undefined, replayed = true) => {
    const chosen = new Int32Array(3 * 2);
    const result = planLayerRouting({
      layout,
      numExperts: 4,
      topK: 2,
      moeLayers: 1,
      ordinal: 0,
      replay: replayed
        ? [createRoutingRecord({ positions: 3, moeLayers: 1, topK: 2, numExperts: 4 }, engine)]
        : [undefined],
      probabilities,
      chosen,
      ...(minScoreRatio === undefined ? {} : { minScoreRatio }),
    });
    return { chosen: [...chosen], replayed: result.replayedSlots, replaced: result.replacedSlots };
  };

  it('keeps an engine expert whose trainer score reaches ratio × the k-th score, else takes the trainer’s best unchosen one', () => {
    // Ratio 0.5. Row 0: threshold 0.15; expert 3 (0.1) is replaced, 0 (0.4) kept; the trainer's best, 0, is
    // taken, so slot 0 gets its next, 1. Row 1: threshold 0.125; 2 (0.25) and 1 (0.5) both kept. Row 2:
    // threshold 0.15; 3 (0.4) kept, 0 (0.1) replaced by the trainer's best unchosen expert, 2.
    expect(plan(0.5)).toEqual({ chosen: [1, 0, 2, 1, 3, 2], replayed: 6, replaced: 2 });
    // Ratio 1: row 1's expert 2 sits exactly at the k-th score (0.25) and stays; the rest as at 0.5.
    expect(plan(1)).toEqual({ chosen: [1, 0, 2, 1, 3, 2], replayed: 6, replaced: 2 });
    // Ratio 1.5: thresholds 0.45, 0.375, 0.45. Row 0 loses both (→ the trainer's 0, 1); row 1 keeps 1 (0.5)
    // and slot 0 skips the trainer's best (1, kept) for 2; row 2 loses both (→ 3, 2).
    expect(plan(1.5)).toEqual({ chosen: [0, 1, 2, 1, 3, 2], replayed: 6, replaced: 5 });
  });

  it('ratio 0 is full replay; a huge ratio is free routing', () => {
    expect(plan(0)).toEqual({ ...plan(undefined), replaced: 0 });
    expect(plan(0).chosen).toEqual(engine);
    expect(plan(1e9)).toEqual({ chosen: plan(undefined, false).chosen, replayed: 6, replaced: 6 });
  });

  it('always leaves k distinct experts, with the same limits on random tables (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 8 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 8, maxLength: 8 }),
        fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
        fc.double({ min: 0, max: 3, noNaN: true }),
        (numExperts, weights, order, ratio) => {
          const k = Math.max(1, Math.floor(numExperts / 2));
          const scores = weights.slice(0, numExperts);
          const total = scores.reduce((sum, value) => sum + value, 0);
          const row = Float32Array.from(scores, (value) => value / total);
          // A replayed row: k distinct experts in an arbitrary order.
          const replayed = Int32Array.from(
            Array.from({ length: numExperts }, (_, expert) => expert)
              .sort((a, b) => order[a]! - order[b]! || a - b)
              .slice(0, k),
          );
          const top = new Int32Array(k);
          const free = new Int32Array(k);
          topKIndices(row, 0, numExperts, k, free);
          const mixed = Int32Array.from(replayed);
          const replaced = mixReplayedRow(mixed, row, 0, numExperts, ratio, top);
          expect(new Set(mixed).size).toBe(k);
          const threshold = ratio * row[free[k - 1]!]!;
          // Exactly the slots below the threshold changed; the kept ones are untouched.
          const below = [...replayed].filter((expert) => row[expert]! < threshold).length;
          expect(replaced).toBe(below);
          mixed.forEach((expert, slot) => {
            if (row[replayed[slot]!]! >= threshold) expect(expert).toBe(replayed[slot]);
          });
          const full = Int32Array.from(replayed);
          expect(mixReplayedRow(full, row, 0, numExperts, 0, top)).toBe(0);
          expect([...full]).toEqual([...replayed]);
          const own = Int32Array.from(replayed);
          mixReplayedRow(own, row, 0, numExperts, 1e9, top);
          expect([...own]).toEqual([...free]);
        },
      ),
    );
  });
});
