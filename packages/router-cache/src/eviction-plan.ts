import type { RadixNode } from './radix-node.js';
import type { KvHandle } from './router-cache-options.js';

/** Orders nodes least recently used first (ties: the older node by creation order of the tick). */
function olderFirst<KV extends KvHandle>(a: RadixNode<KV>, b: RadixNode<KV>): boolean {
  return a.lastAccess < b.lastAccess;
}

/** A binary min-heap of nodes by `lastAccess`. */
class NodeHeap<KV extends KvHandle> {
  private readonly items: RadixNode<KV>[] = [];

  get size(): number {
    return this.items.length;
  }

  push(node: RadixNode<KV>): void {
    const items = this.items;
    items.push(node);
    let index = items.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!olderFirst(items[index]!, items[parent]!)) break;
      [items[index], items[parent]] = [items[parent]!, items[index]!];
      index = parent;
    }
  }

  pop(): RadixNode<KV> | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    items[0] = last;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let smallest = index;
      if (left < items.length && olderFirst(items[left]!, items[smallest]!)) smallest = left;
      if (right < items.length && olderFirst(items[right]!, items[smallest]!)) smallest = right;
      if (smallest === index) break;
      [items[index], items[smallest]] = [items[smallest]!, items[index]!];
      index = smallest;
    }
    return top;
  }
}

export interface EvictionPlan<KV extends KvHandle> {
  /** Nodes to remove, leaves first, in the order they are removed. */
  readonly nodes: readonly RadixNode<KV>[];
  readonly bytes: number;
}

/**
 * Chooses least-recently-used unlocked leaves to remove until `bytesNeeded` are freed, without changing
 * the tree; a parent whose children are all chosen becomes a leaf and a candidate itself. Returns the plan
 * even when it falls short, so callers decide whether a partial plan is acceptable.
 */
export function planEviction<KV extends KvHandle>(
  root: RadixNode<KV>,
  bytesNeeded: number,
  bytesOf: (node: RadixNode<KV>) => number,
): EvictionPlan<KV> {
  const heap = new NodeHeap<KV>();
  const stack: RadixNode<KV>[] = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    for (const child of node.children.values()) {
      if (child.isLeaf) {
        if (child.lockCount === 0) heap.push(child);
      } else stack.push(child);
    }
  }
  const nodes: RadixNode<KV>[] = [];
  const remainingChildren = new Map<RadixNode<KV>, number>();
  let bytes = 0;
  while (bytes < bytesNeeded && heap.size > 0) {
    const node = heap.pop()!;
    nodes.push(node);
    bytes += bytesOf(node);
    const parent = node.parent;
    if (parent === null || parent === root || parent.lockCount > 0) continue;
    const left = (remainingChildren.get(parent) ?? parent.children.size) - 1;
    remainingChildren.set(parent, left);
    if (left === 0) heap.push(parent);
  }
  return { nodes, bytes };
}
