import { createRoutingRecord, MoerlError } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { config, flat, moeLayers, moeRows } from '../__fixtures__/routing-rows.js';
import { expandToHiddenLayers } from '../__fixtures__/wire-writers.js';
import { routingFromWire, routingToHiddenLayers, type WireRoutingExpectation } from './wire-routing.js';

const expectation = (rows: number): WireRoutingExpectation => ({
  requestId: 'r1',
  config,
  layerAxis: 'hidden',
  rows,
  rowsExplained: `${rows}`,
});

function hidden(rows: number[][][]) {
  return {
    rows: rows.length,
    layers: config.numLayers,
    topK: 2,
    values: Int32Array.from(expandToHiddenLayers(rows, moeLayers, config.numLayers, 2)),
  };
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return MoerlError.isInstance(error) ? error.code : 'not a MoerlError';
  }
  return undefined;
}

describe('routingFromWire', () => {
  it('drops dense layers by index, keeping expert 0 on MoE layers', () => {
    const rows = moeRows(4);
    const record = routingFromWire(hidden(rows), expectation(4));
    expect(record.moeLayers).toBe(2);
    expect(record.experts).toBeInstanceOf(Uint8Array);
    expect([...record.experts]).toEqual(flat(rows));
    expect(record.experts[0]).toBe(0);
  });

  it('reads a MoE-only layer axis', () => {
    const rows = moeRows(3);
    const record = routingFromWire(
      { rows: 3, layers: 2, topK: 2, values: Int32Array.from(flat(rows)) },
      { ...expectation(3), layerAxis: 'moe' },
    );
    expect([...record.experts]).toEqual(flat(rows));
  });

  it('rejects an off-by-one row count, naming the request', () => {
    expect(() => routingFromWire(hidden(moeRows(4)), expectation(5))).toThrow(
      /request r1.*4 rows, expected 5/,
    );
  });

  it('rejects a wrong layer width (MoE-only rows where all hidden layers were expected) and top-k', () => {
    const rows = moeRows(2);
    const moeOnly = { rows: 2, layers: 2, topK: 2, values: Int32Array.from(flat(rows)) };
    expect(() => routingFromWire(moeOnly, expectation(2))).toThrow(/2 layers per row, expected 6/);
    const topOne = { rows: 2, layers: 6, topK: 1, values: new Int32Array(12) };
    expect(() => routingFromWire(topOne, expectation(2))).toThrow(/top-1 per layer, expected top-2/);
  });

  it('rejects ids out of range, −1 rows and duplicate picks as ROUTING_SHAPE', () => {
    const rows = moeRows(2);
    const bad = (mutate: (values: Int32Array) => void) => {
      const wire = hidden(rows);
      mutate(wire.values);
      return codeOf(() => routingFromWire(wire, expectation(2)));
    };
    // row 1, MoE layer 5 (hidden index 5), k = 0
    expect(bad((values) => values.set([6], (1 * 6 + 5) * 2))).toBe('ROUTING_SHAPE');
    expect(bad((values) => values.fill(-1, 12, 24))).toBe('ROUTING_SHAPE');
    expect(bad((values) => values.set([3, 3], (0 * 6 + 1) * 2))).toBe('ROUTING_SHAPE');
    // One MoE layer of zeros in an otherwise routed row is a malformed row, not a missing one.
    expect(bad((values) => values.set([0, 0], (1 * 6 + 1) * 2))).toBe('ROUTING_SHAPE');
    // Dense layers are never read: garbage there is ignored.
    expect(bad((values) => values.set([5, 5], 0))).toBeUndefined();
  });

  it('top-k ≥ 2: a row of zeros on every MoE layer is an uncaptured row, ROUTING_MISSING naming it', () => {
    const wire = hidden(moeRows(3));
    wire.values.fill(0, 2 * 12, 3 * 12); // row 2, every hidden layer
    let caught: unknown;
    try {
      routingFromWire(wire, expectation(3));
    } catch (error) {
      caught = error;
    }
    expect(MoerlError.isInstance(caught) && caught.code).toBe('ROUTING_MISSING');
    expect(String((caught as Error).message)).toMatch(/request r1: row 2 is all zeros/);
    expect((caught as MoerlError).details).toMatchObject({ requestId: 'r1', row: 2 });
  });

  it('top-1: rows whose ids are all 0 are valid (expert 0 on every MoE layer)', () => {
    const top1 = { ...config, topK: 1 };
    // 3 rows × 6 hidden layers × top-1: row 0 all zeros, row 1 mixed, row 2 all zeros.
    const ids = [0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0];
    const record = routingFromWire(
      { rows: 3, layers: 6, topK: 1, values: Int32Array.from(ids) },
      { ...expectation(3), config: top1 },
    );
    // MoE layers are hidden layers 1 and 5.
    expect([...record.experts]).toEqual([0, 0, 3, 5, 0, 0]);
  });

  it('accepts zero rows (an empty routing string) when zero rows are expected', () => {
    const record = routingFromWire(
      { rows: 0, layers: 6, topK: 2, values: new Int32Array(0) },
      expectation(0),
    );
    expect(record.positions).toBe(0);
  });

  it('routingToHiddenLayers is the inverse of dropping dense layers', () => {
    const rows = moeRows(3);
    const record = createRoutingRecord({ positions: 3, moeLayers: 2, topK: 2, numExperts: 6 }, flat(rows));
    expect([...routingToHiddenLayers(record, config)]).toEqual(
      expandToHiddenLayers(rows, moeLayers, config.numLayers, 2),
    );
  });
});
