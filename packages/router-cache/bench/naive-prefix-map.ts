import type { RoutingRecord } from '@moerl/core';
import type { KvHandle } from '../src/router-cache-options.js';

/**
 * The baseline the benchmark measures against: one Map entry per cached prefix, keyed by the prefix's
 * token ids. Correct and simple, but every lookup and insert builds keys that grow with the prefix.
 */
export class NaivePrefixMap<KV extends KvHandle> {
  private readonly entries = new Map<string, { kv: KV; row: Uint8Array }>();

  constructor(private readonly rowWidth: number) {}

  match(tokens: ArrayLike<number>): { length: number; kv: KV[]; rows: Uint8Array } {
    const kv: KV[] = [];
    const rows = new Uint8Array(tokens.length * this.rowWidth);
    let key = '';
    let length = 0;
    for (; length < tokens.length; length++) {
      key += `${tokens[length]},`;
      const entry = this.entries.get(key);
      if (entry === undefined) break;
      kv.push(entry.kv);
      rows.set(entry.row, length * this.rowWidth);
    }
    return { length, kv, rows: rows.subarray(0, length * this.rowWidth) };
  }

  insert(tokens: ArrayLike<number>, kv: readonly KV[], routing: RoutingRecord): void {
    let key = '';
    for (let index = 0; index < tokens.length; index++) {
      key += `${tokens[index]},`;
      if (!this.entries.has(key)) {
        const start = index * this.rowWidth;
        this.entries.set(key, {
          kv: kv[index]!,
          row: routing.experts.slice(start, start + this.rowWidth) as Uint8Array,
        });
      }
    }
  }
}
