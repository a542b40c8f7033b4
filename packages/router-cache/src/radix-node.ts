import type { ExpertIdArray } from '@moerl/core';
import type { KvHandle } from './router-cache-options.js';

/** Children are keyed by their first page of tokens: the token itself at page size 1, else a string. */
export type ChildKey = number | string;

export function childKey(tokens: ArrayLike<number>, start: number, pageSize: number): ChildKey {
  if (pageSize === 1) return tokens[start]!;
  let key = '';
  for (let index = start; index < start + pageSize; index++) key += `${tokens[index]},`;
  return key;
}

/**
 * One edge of the radix tree: a run of positions that share every descendant. Positions of an edge always
 * come in whole pages. `kv[i]` and the routing row `i` belong to `tokens[i]`.
 */
export class RadixNode<KV extends KvHandle> {
  parent: RadixNode<KV> | null;
  readonly children = new Map<ChildKey, RadixNode<KV>>();
  tokens: Int32Array;
  kv: KV[];
  routing: ExpertIdArray;
  kvBytes: number;
  /** Matches in flight that hold this node (and through it, its ancestors). */
  lockCount = 0;
  /** Logical clock of the last match or insert that touched the node; LRU order. */
  lastAccess: number;
  readonly weightVersion: number;
  /** Set when a newer weight version dropped the node while it was locked; freed on the last release. */
  stale = false;

  constructor(
    parent: RadixNode<KV> | null,
    tokens: Int32Array,
    kv: KV[],
    routing: ExpertIdArray,
    weightVersion: number,
    lastAccess: number,
  ) {
    this.parent = parent;
    this.tokens = tokens;
    this.kv = kv;
    this.routing = routing;
    this.weightVersion = weightVersion;
    this.lastAccess = lastAccess;
    let bytes = 0;
    for (const handle of kv) bytes += handle.bytes;
    this.kvBytes = bytes;
  }

  get positions(): number {
    return this.tokens.length;
  }

  get isLeaf(): boolean {
    return this.children.size === 0;
  }
}

/** Positions of `node.tokens` that equal `tokens[start..]`, at most `limit`. */
export function commonPrefixLength(
  node: Int32Array,
  tokens: ArrayLike<number>,
  start: number,
  limit: number,
): number {
  const end = Math.min(node.length, limit);
  let length = 0;
  while (length < end && node[length] === tokens[start + length]) length++;
  return length;
}
