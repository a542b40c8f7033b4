import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { routingDisagreement } from './routing-disagreement.js';
import { createRoutingRecord } from './routing-record.js';

const shape = { positions: 4, moeLayers: 2, topK: 2, numExperts: 8 };

describe('routingDisagreement', () => {
  it('counts choices per layer, ignoring the order of the k ids (hand-made example)', () => {
    // [position][layer][k]
    const a = createRoutingRecord(shape, [0, 1, 2, 3, /**/ 4, 5, 6, 7, /**/ 0, 2, 4, 6, /**/ 1, 3, 5, 7]);
    const b = createRoutingRecord(shape, [1, 0, 2, 4, /**/ 4, 5, 6, 7, /**/ 0, 3, 4, 6, /**/ 1, 3, 0, 2]);
    // layer 0: position 2 differs in 1 of 2 choices -> 1 of 8 choices.
    // layer 1: position 0 differs in 1 choice, position 3 in 2 choices -> 3 of 8.
    const result = routingDisagreement(a, b);
    expect([...result.perLayer]).toEqual([1 / 8, 3 / 8]);
    expect(result.overall).toBe(4 / 16);
    expect(result.positionsWithAnyDifference).toBe(3 / 4);
    expect([...result.differingChoicesPerLayer]).toEqual([1, 3]);
    expect(result.differingPositions).toBe(3);
    // Positions 0 (layer 1), 2 (layer 0) and 3 (layer 1) differ; position 1 is identical.
    expect([...result.positionDiffers]).toEqual([1, 0, 1, 1]);
    expect(result.choicesPerLayer).toBe(8);
  });

  it('is zero for identical records and one for disjoint ones', () => {
    const a = createRoutingRecord(
      shape,
      Array.from({ length: 16 }, (_, index) => (index % 2 === 0 ? 0 : 1)),
    );
    const b = createRoutingRecord(
      shape,
      Array.from({ length: 16 }, (_, index) => (index % 2 === 0 ? 2 : 3)),
    );
    expect(routingDisagreement(a, a).overall).toBe(0);
    const disjoint = routingDisagreement(a, b);
    expect([...disjoint.perLayer]).toEqual([1, 1]);
    expect(disjoint.positionsWithAnyDifference).toBe(1);
  });

  it('is symmetric and agrees with a set-based second implementation (property)', () => {
    const row = fc.uniqueArray(fc.integer({ min: 0, max: 7 }), { minLength: 2, maxLength: 2 });
    const records = fc.array(row, { minLength: 8, maxLength: 8 });
    fc.assert(
      fc.property(records, records, (rowsA, rowsB) => {
        const a = createRoutingRecord(shape, rowsA.flat());
        const b = createRoutingRecord(shape, rowsB.flat());
        const result = routingDisagreement(a, b);
        expect(routingDisagreement(b, a).overall).toBeCloseTo(result.overall, 12);
        let differing = 0;
        for (let index = 0; index < 8; index++) {
          const other = new Set(rowsB[index]);
          differing += rowsA[index]!.filter((id) => !other.has(id)).length;
        }
        expect(result.overall).toBeCloseTo(differing / 16, 12);
      }),
    );
  });

  it('reports integer counts that the fractions are made of (property)', () => {
    const row = fc.uniqueArray(fc.integer({ min: 0, max: 7 }), { minLength: 2, maxLength: 2 });
    const layout = fc.integer({ min: 0, max: 6 }).chain((positions) =>
      fc.record({
        positions: fc.constant(positions),
        rowsA: fc.array(row, { minLength: positions * 2, maxLength: positions * 2 }),
        rowsB: fc.array(row, { minLength: positions * 2, maxLength: positions * 2 }),
      }),
    );
    fc.assert(
      fc.property(layout, ({ positions, rowsA, rowsB }) => {
        const sized = { ...shape, positions };
        const result = routingDisagreement(
          createRoutingRecord(sized, rowsA.flat()),
          createRoutingRecord(sized, rowsB.flat()),
        );
        // Counted independently: rows are [position][layer], two layers per position.
        const perLayer = [0, 0];
        let positionsDiffering = 0;
        for (let position = 0; position < positions; position++) {
          let any = false;
          for (let layer = 0; layer < 2; layer++) {
            const other = new Set(rowsB[position * 2 + layer]);
            const missing = rowsA[position * 2 + layer]!.filter((id) => !other.has(id)).length;
            perLayer[layer]! += missing;
            any ||= missing > 0;
          }
          if (any) positionsDiffering++;
        }
        expect([...result.differingChoicesPerLayer]).toEqual(perLayer);
        expect(result.differingPositions).toBe(positionsDiffering);
        expect(result.choicesPerLayer).toBe(positions * 2);
        for (let layer = 0; layer < 2; layer++) {
          expect(result.perLayer[layer]! * result.choicesPerLayer).toBeCloseTo(perLayer[layer]!, 9);
        }
        expect(result.positionsWithAnyDifference * positions).toBeCloseTo(positionsDiffering, 9);
      }),
    );
  });

  it('rejects records of different shapes and handles empty ones', () => {
    const a = createRoutingRecord(shape);
    const b = createRoutingRecord({ ...shape, positions: 3 });
    expect(() => routingDisagreement(a, b)).toThrow(
      /Cannot compare routing of shape \[4\]\[2\]\[2\] with \[3\]\[2\]\[2\]/,
    );
    const empty = createRoutingRecord({ ...shape, positions: 0 });
    expect(routingDisagreement(empty, empty)).toMatchObject({
      overall: 0,
      positionsWithAnyDifference: 0,
      differingPositions: 0,
      choicesPerLayer: 0,
    });
  });
});
