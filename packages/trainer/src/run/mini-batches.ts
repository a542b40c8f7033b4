/** Sequence ranges [start, end) that split `count` sequences into `parts` near-equal contiguous chunks. */
export function miniBatchRanges(count: number, parts: number): [number, number][] {
  const chunks = Math.max(1, Math.min(parts, count));
  const ranges: [number, number][] = [];
  for (let part = 0; part < chunks; part++) {
    const start = Math.floor((part * count) / chunks);
    const end = Math.floor(((part + 1) * count) / chunks);
    if (end > start) ranges.push([start, end]);
  }
  return ranges;
}

/** The tokens of sequences [start, end) of a flattened per-token array. */
export function sliceTokens<T extends Float32Array | Float64Array>(
  values: T,
  offsets: Int32Array,
  start: number,
  end: number,
): T {
  return values.slice(offsets[start]!, offsets[end]!) as T;
}
