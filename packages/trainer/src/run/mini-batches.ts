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
