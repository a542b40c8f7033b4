import { createRoutingRecord } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { expectMoerlError } from '../__fixtures__/random-batch.js';
import { routingMismatch, routingMismatchMetrics } from './routing-mismatch.js';

const record = (positions: number, experts: number[]) =>
  createRoutingRecord({ positions, moeLayers: 2, topK: 2, numExperts: 4 }, experts);

// Pair 1: 2 positions; only position 1, layer 0 differs ({1, 2} vs {1, 3}); order within top-k is ignored.
const pair1 = { engine: record(2, [0, 1, 2, 3, 1, 2, 0, 3]), trainer: record(2, [1, 0, 2, 3, 1, 3, 0, 3]) };
// Pair 2: 3 positions; only position 2, layer 1 differs ({2, 3} vs {1, 3}).
const pair2 = {
  engine: record(3, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]),
  trainer: record(3, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 1, 3]),
};

describe('routingMismatch', () => {
  it('pools counts over the batch: per layer, overall, and positions differing in any layer', () => {
    const result = routingMismatch([pair1, pair2]);
    expect(result.positions).toBe(5);
    // One differing choice per layer out of 5 positions × top-2.
    expect(Array.from(result.perLayer)).toEqual([0.1, 0.1]);
    expect(result.overall).toBeCloseTo(0.1, 14);
    expect(result.tokensWithAnyDifference).toBeCloseTo(0.4, 14);
    expect(routingMismatchMetrics(result)).toEqual({
      routingDisagreement: result.overall,
      routingTokensWithAnyDifference: result.tokensWithAnyDifference,
      routingDisagreementLayer0: 0.1,
      routingDisagreementLayer1: 0.1,
    });
  });

  it('starts at startPosition, e.g. to measure response tokens only', () => {
    const result = routingMismatch([{ ...pair1, startPosition: 1 }, pair2]);
    expect(result.positions).toBe(4);
    expect(Array.from(result.perLayer)).toEqual([1 / 8, 1 / 8]);
    expect(result.tokensWithAnyDifference).toBe(0.5);
  });

  it('rejects an empty batch and records of another shape', () => {
    expectMoerlError(() => routingMismatch([]), 'INVALID_ARGUMENT', 'pairs');
    const other = createRoutingRecord({ positions: 1, moeLayers: 1, topK: 2, numExperts: 4 }, [0, 1]);
    expectMoerlError(
      () => routingMismatch([pair1, { engine: other, trainer: other }]),
      'ROUTING_SHAPE',
      'pairs[1].engine',
    );
  });
});
