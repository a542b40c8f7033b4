import type { PositionKv } from '../cache/prefix-store.js';
import type { LayerKv } from './moe-session.js';

/** A float32 tensor `[batch, kvHeads, slots, headDim]` held on the host (the runtime's tensors wrap it without a copy). */
export interface KvTensor {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/*
 * Host-side moves of KV tensors `[batch, kvHeads, slots, headDim]`: cutting one position out for the prefix
 * cache, rebuilding a past from cached positions, stacking sequences into a decode batch (right-padded;
 * the attention bias masks the holes) and dropping finished rows.
 */

interface Dims {
  readonly batch: number;
  readonly heads: number;
  readonly slots: number;
  readonly width: number;
}

function dimsOf(tensor: KvTensor): Dims {
  const [batch, heads, slots, width] = tensor.dims as [number, number, number, number];
  return { batch, heads, slots, width };
}

const data = (tensor: KvTensor) => tensor.data;

/** The KV of `slot` in batch row `row`, all layers, as one cache handle. */
export function positionKv(kv: readonly LayerKv[], row: number, slot: number): PositionKv {
  const { heads, slots, width } = dimsOf(kv[0]!.key);
  const out = new Float32Array(kv.length * 2 * heads * width);
  let offset = 0;
  for (const layer of kv) {
    for (const tensor of [layer.key, layer.value]) {
      const source = data(tensor);
      for (let head = 0; head < heads; head++) {
        const start = ((row * heads + head) * slots + slot) * width;
        out.set(source.subarray(start, start + width), offset);
        offset += width;
      }
    }
  }
  return { bytes: out.byteLength, data: out };
}

/**
 * A past of one batch row per entry of `rows`, all of the same length: slot `s` of row `b` holds
 * `rows[b][s]`, or zeros where that is undefined (a hole the attention bias masks).
 */
export function pastFromPositionRows(
  rows: ReadonlyArray<ReadonlyArray<PositionKv | undefined>>,
  layers: number,
  heads: number,
  width: number,
): LayerKv[] {
  const batch = rows.length;
  const slots = rows[0]?.length ?? 0;
  const result: LayerKv[] = [];
  for (let layer = 0; layer < layers; layer++) {
    const size = batch * heads * slots * width;
    const tensors = [new Float32Array(size), new Float32Array(size)];
    rows.forEach((handles, row) => {
      handles.forEach((handle, slot) => {
        if (handle === undefined) return;
        for (let part = 0; part < 2; part++) {
          for (let head = 0; head < heads; head++) {
            const source = ((layer * 2 + part) * heads + head) * width;
            tensors[part]!.set(
              handle.data.subarray(source, source + width),
              ((row * heads + head) * slots + slot) * width,
            );
          }
        }
      });
    });
    result.push({
      key: { data: tensors[0]!, dims: [batch, heads, slots, width] },
      value: { data: tensors[1]!, dims: [batch, heads, slots, width] },
    });
  }
  return result;
}

/** Copies rows of `sources` (each `[batch_i, heads, slots_i, width]`) into one `[Σ rows, heads, slots, width]`. */
function gatherRows(
  parts: ReadonlyArray<{ readonly tensor: KvTensor; readonly row: number }>,
  slots: number,
): KvTensor {
  const first = dimsOf(parts[0]!.tensor);
  const { heads, width } = first;
  const out = new Float32Array(parts.length * heads * slots * width);
  parts.forEach(({ tensor, row }, target) => {
    const source = data(tensor);
    const sourceSlots = dimsOf(tensor).slots;
    const copy = Math.min(sourceSlots, slots);
    for (let head = 0; head < heads; head++) {
      const from = (row * heads + head) * sourceSlots * width;
      out.set(source.subarray(from, from + copy * width), (target * heads + head) * slots * width);
    }
  });
  return { data: out, dims: [parts.length, heads, slots, width] };
}

/** Stacks batch-1 KVs of different lengths into one batch of `slots` slots, right-padded with zeros. */
export function stackSequences(sequences: ReadonlyArray<readonly LayerKv[]>, slots: number): LayerKv[] {
  const layers = sequences[0]!.length;
  return Array.from({ length: layers }, (_, layer) => ({
    key: gatherRows(
      sequences.map((kv) => ({ tensor: kv[layer]!.key, row: 0 })),
      slots,
    ),
    value: gatherRows(
      sequences.map((kv) => ({ tensor: kv[layer]!.value, row: 0 })),
      slots,
    ),
  }));
}

/** A batch-1 KV of `count` slots of batch row `row` from slot `start` on, every layer. */
export function rowSlots(kv: readonly LayerKv[], row: number, start: number, count: number): LayerKv[] {
  const copy = (tensor: KvTensor): KvTensor => {
    const { heads, slots, width } = dimsOf(tensor);
    const source = data(tensor);
    const out = new Float32Array(heads * count * width);
    for (let head = 0; head < heads; head++) {
      const from = ((row * heads + head) * slots + start) * width;
      out.set(source.subarray(from, from + count * width), head * count * width);
    }
    return { data: out, dims: [1, heads, count, width] };
  };
  return kv.map((layer) => ({ key: copy(layer.key), value: copy(layer.value) }));
}

/** Keeps only the batch rows `rows` (in that order). */
export function selectRows(kv: readonly LayerKv[], rows: readonly number[]): LayerKv[] {
  const slots = dimsOf(kv[0]!.key).slots;
  return kv.map((layer) => ({
    key: gatherRows(
      rows.map((row) => ({ tensor: layer.key, row })),
      slots,
    ),
    value: gatherRows(
      rows.map((row) => ({ tensor: layer.value, row })),
      slots,
    ),
  }));
}
