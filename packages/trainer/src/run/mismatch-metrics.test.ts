import { createRoutingRecord, type Trajectory } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { mismatchMetrics, tokensWithFlippedRouting } from './mismatch-metrics.js';

// One trajectory: prompt of 2 tokens, response of 3 → routing over 4 positions, 2 MoE layers, top-2.
// Response token t comes out of position 1 + t. The trainer differs from the engine at position 2 (layer 1,
// one expert of two) and at position 0 (a prompt position, which produces no response token), and
// swaps the order at position 3 (same set: no flip).
const engineExperts = [0, 1, 2, 3, /* p1 */ 0, 1, 2, 3, /* p2 */ 4, 5, 6, 7, /* p3 */ 1, 2, 3, 4];
const trainerExperts = [0, 5, 2, 3, /* p1 */ 0, 1, 2, 3, /* p2 */ 4, 5, 6, 0, /* p3 */ 2, 1, 4, 3];
const shape = { positions: 4, moeLayers: 2, topK: 2, numExperts: 8 };
const trajectory: Trajectory = {
  id: 'a',
  groupId: 'g',
  promptIds: Int32Array.from([1, 2]),
  responseIds: Int32Array.from([3, 4, 5]),
  engineLogprobs: Float32Array.from([-0.5, -1.0, -0.25]),
  routing: createRoutingRecord(shape, engineExperts),
  finishReason: 'stop',
  weightVersion: 0,
};
const offsets = Int32Array.from([0, 3]);
const trainerRouting = [createRoutingRecord(shape, trainerExperts)];

describe('mismatchMetrics', () => {
  it('flags the response tokens whose routing flipped in any layer, as sets', () => {
    expect(Array.from(tokensWithFlippedRouting([trajectory], trainerRouting, offsets))).toEqual([0, 1, 0]);
  });

  it('splits the k3 KL between flipped and steady tokens, and computes max |Δ| and exp|Δ| means', () => {
    const free = Float32Array.from([-0.5, -2.0, -0.5]); // Δ = 0, -1, -0.25
    const replay = Float32Array.from([-0.5, -1.1, -0.25]); // Δ = 0, -0.1, 0
    const metrics = mismatchMetrics(
      [trajectory],
      trajectory.engineLogprobs,
      { logprobs: free, sequenceOffsets: offsets, routing: trainerRouting },
      { logprobs: replay, sequenceOffsets: offsets },
    );
    const k3 = (delta: number) => Math.exp(delta) - delta - 1;
    const deltaFree = [0, Math.fround(-2.0) - Math.fround(-1.0), Math.fround(-0.5) - Math.fround(-0.25)];
    const deltaReplay = [0, Math.fround(-1.1) - Math.fround(-1.0), 0];
    expect(metrics.klFree).toBeCloseTo((k3(deltaFree[1]!) + k3(deltaFree[2]!)) / 3, 12);
    expect(metrics.klFreeFlipped).toBeCloseTo(k3(deltaFree[1]!), 12);
    expect(metrics.klFreeSteady).toBeCloseTo(k3(deltaFree[2]!) / 2, 12);
    expect(metrics.klFreeShareOnFlippedTokens).toBeCloseTo(
      k3(deltaFree[1]!) / (k3(deltaFree[1]!) + k3(deltaFree[2]!)),
      12,
    );
    expect(metrics.klReplayFlipped).toBeCloseTo(k3(deltaReplay[1]!), 12);
    expect(metrics.klReplaySteady).toBe(0);
    expect(metrics.maxAbsDeltaFree).toBeCloseTo(1, 6);
    expect(metrics.maxAbsDeltaReplay).toBeCloseTo(0.1, 6);
    expect(metrics.tokenMultProbErrorFree).toBeCloseTo((1 + Math.E + Math.exp(0.25)) / 3, 6);
    expect(metrics.tokensWithRoutingDifference).toBeCloseTo(1 / 3, 12);
    // Per layer over the 3 response positions × top-2: layer 0 no difference, layer 1 one of six choices.
    expect(metrics.routingDisagreement).toEqual([0, 1 / 6]);
    expect(metrics.extremeTokenFractionFree).toBeCloseTo(1 / 3, 12);
    // |Δ| free = 0, 1, 0.25 → bins [0, 1e-6), [1, 10), [0.1, 1); the flipped token is the |Δ| = 1 one.
    expect(metrics.absDeltaHistogramFree).toEqual([1, 0, 0, 0, 0, 0, 1, 1, 0]);
    expect(metrics.absDeltaHistogramFreeFlipped).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 0]);
    // Replay: 0, ≈0.1 (float32 rounding puts it on either side of 0.1), 0.
    expect(metrics.absDeltaHistogramReplay.reduce((a, b) => a + b, 0)).toBe(3);
    expect(metrics.absDeltaHistogramReplay[0]).toBe(2);
  });

  it('reports NaN for the replay side and the split when nothing flipped', () => {
    const metrics = mismatchMetrics(
      [trajectory],
      trajectory.engineLogprobs,
      {
        logprobs: Float32Array.from(trajectory.engineLogprobs),
        sequenceOffsets: offsets,
        routing: [trajectory.routing!],
      },
      undefined,
    );
    expect(metrics.klReplay).toBeNaN();
    expect(metrics.klFreeFlipped).toBeNaN();
    expect(metrics.klFreeShareOnFlippedTokens).toBeNaN();
    expect(metrics.tokensWithRoutingDifference).toBe(0);
  });
});
