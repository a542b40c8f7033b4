import { describe, expect, it } from 'vitest';
import {
  type KvTensor,
  pastFromPositionRows,
  positionKv,
  rowSlots,
  selectRows,
  stackSequences,
} from './kv-layout.js';
import type { LayerKv } from './moe-session.js';

// Every element holds a number that encodes its own coordinates, so a misplaced copy is visible.
const code = (layer: number, part: number, row: number, head: number, slot: number, dim: number) =>
  layer * 100_000 + part * 10_000 + row * 1000 + head * 100 + slot * 10 + dim;

function kvOf(layers: number, rows: number, heads: number, slots: number, width: number): LayerKv[] {
  return Array.from({ length: layers }, (_, layer) => {
    const make = (part: number) => {
      const data = new Float32Array(rows * heads * slots * width);
      for (let row = 0; row < rows; row++)
        for (let head = 0; head < heads; head++)
          for (let slot = 0; slot < slots; slot++)
            for (let dim = 0; dim < width; dim++)
              data[((row * heads + head) * slots + slot) * width + dim] = code(
                layer,
                part,
                row,
                head,
                slot,
                dim,
              );
      return { data, dims: [rows, heads, slots, width] };
    };
    return { key: make(0), value: make(1) };
  });
}

const at = (tensor: KvTensor, row: number, head: number, slot: number, dim: number) => {
  const [, heads, slots, width] = tensor.dims as number[];
  return (tensor.data as Float32Array)[((row * heads! + head) * slots! + slot) * width! + dim];
};

describe('KV layout helpers', () => {
  const layers = 2;
  const heads = 2;
  const width = 3;

  it('positionKv cuts one position of one row: [layer][key|value][head][dim]', () => {
    const handle = positionKv(kvOf(layers, 3, heads, 5, width), 2, 4);
    expect(handle.bytes).toBe(layers * 2 * heads * width * 4);
    expect(handle.data[0]).toBe(code(0, 0, 2, 0, 4, 0));
    // layer 1, value, head 1, dim 2 is the last element
    expect(handle.data[handle.data.length - 1]).toBe(code(1, 1, 2, 1, 4, 2));
  });

  it('pastFromPositionRows rebuilds a batch-1 past from handles, in order (round trip)', () => {
    const source = kvOf(layers, 2, heads, 4, width);
    const slots = [3, 0, 2];
    const past = pastFromPositionRows(
      [slots.map((slot) => positionKv(source, 1, slot))],
      layers,
      heads,
      width,
    );
    expect(past[1]!.value.dims).toEqual([1, heads, 3, width]);
    slots.forEach((slot, index) => {
      expect(at(past[1]!.value, 0, 1, index, 2)).toBe(code(1, 1, 1, 1, slot, 2));
      expect(at(past[0]!.key, 0, 0, index, 0)).toBe(code(0, 0, 1, 0, slot, 0));
    });
  });

  it('pastFromPositionRows puts the handles of each row at its slots and zeros in its holes', () => {
    const source = kvOf(layers, 2, heads, 4, width);
    const rows = [
      [undefined, undefined, positionKv(source, 0, 3)],
      [positionKv(source, 1, 0), positionKv(source, 1, 2), positionKv(source, 0, 1)],
    ];
    const past = pastFromPositionRows(rows, layers, heads, width);
    expect(past[0]!.key.dims).toEqual([2, heads, 3, width]);
    expect(at(past[0]!.key, 0, 1, 0, 2)).toBe(0);
    expect(at(past[1]!.value, 0, 1, 1, 1)).toBe(0);
    expect(at(past[1]!.value, 0, 1, 2, 1)).toBe(code(1, 1, 0, 1, 3, 1));
    expect(at(past[0]!.key, 1, 0, 0, 0)).toBe(code(0, 0, 1, 0, 0, 0));
    expect(at(past[1]!.value, 1, 1, 1, 2)).toBe(code(1, 1, 1, 1, 2, 2));
    expect(at(past[0]!.key, 1, 1, 2, 0)).toBe(code(0, 0, 0, 1, 1, 0));
  });

  it('rowSlots copies a run of slots of one row into a batch-1 KV', () => {
    const [, layer1] = rowSlots(kvOf(layers, 3, heads, 5, width), 2, 1, 3);
    expect(layer1!.key.dims).toEqual([1, heads, 3, width]);
    for (let slot = 0; slot < 3; slot++) {
      expect(at(layer1!.key, 0, 1, slot, 2)).toBe(code(1, 0, 2, 1, slot + 1, 2));
      expect(at(layer1!.value, 0, 0, slot, 0)).toBe(code(1, 1, 2, 0, slot + 1, 0));
    }
  });

  it('stackSequences right-pads shorter sequences with zeros', () => {
    const long = kvOf(layers, 1, heads, 4, width);
    const short = kvOf(layers, 1, heads, 2, width);
    const [layer0] = stackSequences([short, long], 4);
    expect(layer0!.key.dims).toEqual([2, heads, 4, width]);
    expect(at(layer0!.key, 0, 1, 1, 2)).toBe(code(0, 0, 0, 1, 1, 2));
    expect(at(layer0!.key, 0, 1, 2, 2)).toBe(0);
    expect(at(layer0!.key, 1, 1, 3, 2)).toBe(code(0, 0, 0, 1, 3, 2));
  });

  it('selectRows keeps the chosen rows in the given order', () => {
    const kv = kvOf(layers, 3, heads, 2, width);
    const [, layer1] = selectRows(kv, [2, 0]);
    expect(layer1!.value.dims).toEqual([2, heads, 2, width]);
    expect(at(layer1!.value, 0, 0, 1, 1)).toBe(code(1, 1, 2, 0, 1, 1));
    expect(at(layer1!.value, 1, 1, 0, 0)).toBe(code(1, 1, 0, 1, 0, 0));
  });
});
