import type { ExpertIdArray, RoutingRecord } from '@moerl/core';
import { expertIdArrayFor, MoerlError } from '@moerl/core';
import { planEviction } from './eviction-plan.js';
import { childKey, commonPrefixLength, RadixNode } from './radix-node.js';
import {
  type KvHandle,
  type ResolvedRouterCacheOptions,
  type RouterCacheOptions,
  resolveRouterCacheOptions,
} from './router-cache-options.js';
import type {
  InsertOptions,
  InsertResult,
  PrefixMatch,
  RadixNodeDump,
  RouterCache,
  RouterCacheDump,
  RouterCacheStats,
} from './router-cache-types.js';
import { validateInsert, validateTokens } from './validate-input.js';

/** Where a walk down the tree stopped: the deepest whole node, and a partly matched edge below it. */
interface WalkResult<KV extends KvHandle> {
  readonly node: RadixNode<KV>;
  readonly matched: number;
  readonly partial: { readonly child: RadixNode<KV>; readonly common: number } | null;
}

/** Same expert set for every layer of one position (order within top-k does not change the output). */
function sameRouting(
  a: ExpertIdArray,
  aStart: number,
  b: ExpertIdArray,
  bStart: number,
  moeLayers: number,
  topK: number,
) {
  const width = moeLayers * topK;
  let identical = true;
  for (let index = 0; index < width && identical; index++)
    identical = a[aStart + index] === b[bStart + index];
  if (identical) return true;
  for (let layer = 0; layer < moeLayers; layer++) {
    const offsetA = aStart + layer * topK;
    const offsetB = bStart + layer * topK;
    for (let k = 0; k < topK; k++) {
      const id = a[offsetA + k];
      let found = false;
      for (let other = 0; other < topK && !found; other++) found = b[offsetB + other] === id;
      if (!found) return false;
    }
  }
  return true;
}

class RadixRouterCache<KV extends KvHandle> implements RouterCache<KV> {
  private readonly options: ResolvedRouterCacheOptions<KV>;
  private readonly rowWidth: number;
  private readonly bytesPerPosition: number;
  private root: RadixNode<KV>;
  private clock = 0;
  private currentVersion: number;
  private counters = {
    hits: 0,
    misses: 0,
    requestedTokens: 0,
    hitTokens: 0,
    nodes: 0,
    positions: 0,
    kvBytes: 0,
    evictedNodes: 0,
    evictedPositions: 0,
    invalidatedPositions: 0,
    routingConflicts: 0,
    staleInserts: 0,
  };

  constructor(options: RouterCacheOptions<KV>) {
    this.options = resolveRouterCacheOptions(options);
    this.rowWidth = this.options.moeLayers * this.options.topK;
    const idBytes = this.options.numExperts <= 256 ? 1 : 2;
    this.bytesPerPosition = this.rowWidth * idBytes + this.options.positionOverheadBytes;
    this.currentVersion = this.options.weightVersion;
    this.root = this.emptyRoot();
  }

  get pageSize(): number {
    return this.options.pageSize;
  }

  get budgetBytes(): number {
    return this.options.budgetBytes;
  }

  get weightVersion(): number {
    return this.currentVersion;
  }

  get bytesUsed(): number {
    return this.counters.kvBytes + this.counters.positions * this.bytesPerPosition;
  }

  match(tokens: ArrayLike<number>): PrefixMatch<KV> {
    validateTokens(tokens, 'match');
    const limit = tokens.length - (tokens.length % this.pageSize);
    const { node, matched, partial } = this.walk(tokens, limit);
    const end = partial === null ? node : this.split(partial.child, partial.common);
    const length = matched + (partial?.common ?? 0);
    this.counters.requestedTokens += tokens.length;
    if (length === 0) {
      this.counters.misses++;
      return this.emptyMatch();
    }
    this.counters.hits++;
    this.counters.hitTokens += length;
    const chain = this.chainTo(end);
    this.touch(end);
    this.lock(end);
    const kv: KV[] = [];
    for (const link of chain) for (const handle of link.kv) kv.push(handle);
    return this.lockedMatch(end, length, kv, this.prefixRouting(chain, length));
  }

  /**
   * The routing rows of a matched chain. A prefix held by one node is returned as that node's own array:
   * nodes never write their arrays after creation (splits copy), and the engine copies the rows into the
   * trajectory's record anyway, so a second copy here would only cost time (≈ 0.3 ms per 4 096 tokens at
   * the Qwen3-30B-A3B shape).
   */
  private prefixRouting(chain: readonly RadixNode<KV>[], length: number): ExpertIdArray {
    if (chain.length === 1) return chain[0]!.routing;
    const experts = expertIdArrayFor(this.options.numExperts, length * this.rowWidth);
    let offset = 0;
    for (const link of chain) {
      experts.set(link.routing, offset);
      offset += link.routing.length;
    }
    return experts;
  }

  private lockedMatch(end: RadixNode<KV>, length: number, kv: KV[], experts: ExpertIdArray): PrefixMatch<KV> {
    let released = false;
    return {
      length,
      kv,
      routing: { positions: length, moeLayers: this.options.moeLayers, topK: this.options.topK, experts },
      weightVersion: end.weightVersion,
      release: () => {
        if (released)
          throw new MoerlError('INVALID_ARGUMENT', 'release: this prefix match was already released');
        released = true;
        this.unlock(end);
      },
    };
  }

  insert(
    tokens: ArrayLike<number>,
    kv: readonly KV[],
    routing: RoutingRecord,
    options: InsertOptions = {},
  ): InsertResult<KV> {
    validateInsert(tokens, kv, routing, this.options);
    const version = options.weightVersion ?? this.currentVersion;
    if (!Number.isSafeInteger(version) || version < 0 || version > this.currentVersion) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `insert: weightVersion must be an integer in [0, ${this.currentVersion}] (call setWeightVersion first for newer weights), found ${version}`,
        { details: { field: 'weightVersion', found: version, current: this.currentVersion } },
      );
    }
    if (version < this.currentVersion) {
      this.counters.staleInserts++;
      return {
        storedPositions: 0,
        sharedPositions: 0,
        skippedPositions: tokens.length,
        unusedKv: kv.slice(),
        routingConflicts: 0,
      };
    }
    const limit = tokens.length - (tokens.length % this.pageSize);
    const walk = this.walk(tokens, limit);
    const shared = walk.matched + (walk.partial?.common ?? 0);
    const sharedNodes = this.chainTo(walk.node);
    if (walk.partial !== null) sharedNodes.push(walk.partial.child);
    const conflicts = this.conflictingPositions(sharedNodes, shared, routing);
    const unusedKv = this.unusedHandles(sharedNodes, shared, limit, kv);
    const newPositions = limit - shared;
    const evicted: KV[] = [];
    let leaf: RadixNode<KV> = walk.partial?.child ?? walk.node;
    if (newPositions > 0) {
      let newKvBytes = 0;
      for (let index = shared; index < limit; index++) newKvBytes += kv[index]!.bytes;
      this.makeRoom(newKvBytes + newPositions * this.bytesPerPosition, walk, evicted);
      const parent = walk.partial === null ? walk.node : this.split(walk.partial.child, walk.partial.common);
      const rows = expertIdArrayFor(this.options.numExperts, newPositions * this.rowWidth);
      rows.set(routing.experts.subarray(shared * this.rowWidth, limit * this.rowWidth));
      leaf = new RadixNode(
        parent,
        Int32Array.from({ length: newPositions }, (_, index) => tokens[shared + index]!),
        kv.slice(shared, limit),
        rows,
        version,
        this.clock,
      );
      parent.children.set(childKey(leaf.tokens, 0, this.pageSize), leaf);
      this.account(leaf, 1);
    }
    if (leaf !== this.root) this.touch(leaf);
    this.counters.routingConflicts += conflicts.length;
    if (evicted.length > 0) this.options.onEvict?.(evicted, 'budget');
    if (conflicts.length > 0) this.reportConflicts(conflicts, sharedNodes, routing);
    return {
      storedPositions: newPositions,
      sharedPositions: shared,
      skippedPositions: tokens.length - limit,
      unusedKv,
      routingConflicts: conflicts.length,
    };
  }

  evict(bytes: number): number {
    if (typeof bytes !== 'number' || !(bytes >= 0)) {
      throw new MoerlError('INVALID_ARGUMENT', `evict: bytes must be a number ≥ 0, found ${String(bytes)}`, {
        details: { field: 'bytes', found: bytes },
      });
    }
    const plan = planEviction(this.root, bytes, (node) => this.bytesOf(node));
    const handles: KV[] = [];
    this.remove(plan.nodes, handles);
    if (handles.length > 0) this.options.onEvict?.(handles, 'explicit');
    return plan.bytes;
  }

  setWeightVersion(version: number): void {
    if (!Number.isSafeInteger(version) || version < this.currentVersion) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `setWeightVersion: versions only move forward; expected an integer ≥ ${this.currentVersion}, found ${version}`,
        { details: { field: 'version', found: version, current: this.currentVersion } },
      );
    }
    if (version === this.currentVersion) return;
    this.currentVersion = version;
    const handles: KV[] = [];
    const stack = [...this.root.children.values()];
    while (stack.length > 0) {
      const node = stack.pop()!;
      for (const child of node.children.values()) stack.push(child);
      this.counters.invalidatedPositions += node.positions;
      // A node in use keeps its memory until the match holding it is released.
      if (node.lockCount > 0) node.stale = true;
      else this.free(node, handles);
    }
    this.root = this.emptyRoot();
    if (handles.length > 0) this.options.onEvict?.(handles, 'weight-version');
  }

  stats(): RouterCacheStats {
    const c = this.counters;
    let lockedNodes = 0;
    this.forEachNode((node) => {
      if (node.lockCount > 0) lockedNodes++;
    });
    const routingBytes = c.positions * (this.bytesPerPosition - this.options.positionOverheadBytes);
    return {
      hits: c.hits,
      misses: c.misses,
      requestedTokens: c.requestedTokens,
      hitTokens: c.hitTokens,
      hitRate: c.requestedTokens === 0 ? 0 : c.hitTokens / c.requestedTokens,
      nodes: c.nodes,
      cachedPositions: c.positions,
      kvBytes: c.kvBytes,
      routingBytes,
      overheadBytes: c.positions * this.options.positionOverheadBytes,
      bytesUsed: this.bytesUsed,
      budgetBytes: this.budgetBytes,
      lockedNodes,
      evictedNodes: c.evictedNodes,
      evictedPositions: c.evictedPositions,
      invalidatedPositions: c.invalidatedPositions,
      routingConflicts: c.routingConflicts,
      staleInserts: c.staleInserts,
      weightVersion: this.currentVersion,
    };
  }

  toJSON(): RouterCacheDump {
    const dump = (node: RadixNode<KV>): RadixNodeDump => ({
      tokens: Array.from(node.tokens),
      routing: Array.from(node.routing),
      kvBytes: node.kvBytes,
      lockCount: node.lockCount,
      lastAccess: node.lastAccess,
      weightVersion: node.weightVersion,
      children: [...node.children.values()].map(dump).sort((a, b) => a.tokens[0]! - b.tokens[0]!),
    });
    return {
      weightVersion: this.currentVersion,
      pageSize: this.pageSize,
      budgetBytes: this.budgetBytes,
      bytesUsed: this.bytesUsed,
      root: dump(this.root),
    };
  }

  private emptyRoot(): RadixNode<KV> {
    return new RadixNode<KV>(
      null,
      new Int32Array(0),
      [],
      expertIdArrayFor(this.options.numExperts, 0),
      this.currentVersion,
      0,
    );
  }

  private emptyMatch(): PrefixMatch<KV> {
    return {
      length: 0,
      kv: [],
      routing: {
        positions: 0,
        moeLayers: this.options.moeLayers,
        topK: this.options.topK,
        experts: expertIdArrayFor(this.options.numExperts, 0),
      },
      weightVersion: this.currentVersion,
      release: () => {},
    };
  }

  private walk(tokens: ArrayLike<number>, limit: number): WalkResult<KV> {
    const pageSize = this.pageSize;
    let node = this.root;
    let matched = 0;
    while (matched < limit) {
      const child = node.children.get(childKey(tokens, matched, pageSize));
      if (child === undefined) break;
      const same = commonPrefixLength(child.tokens, tokens, matched, limit - matched);
      const common = same - (same % pageSize);
      if (common < child.positions) return { node, matched, partial: common > 0 ? { child, common } : null };
      node = child;
      matched += common;
    }
    return { node, matched, partial: null };
  }

  /** Cuts `node` after `at` positions; returns the new upper part, which takes the node's place. */
  private split(node: RadixNode<KV>, at: number): RadixNode<KV> {
    const parent = node.parent!;
    const width = this.rowWidth;
    const top = new RadixNode(
      parent,
      node.tokens.slice(0, at),
      node.kv.slice(0, at),
      node.routing.slice(0, at * width),
      node.weightVersion,
      node.lastAccess,
    );
    top.lockCount = node.lockCount;
    node.tokens = node.tokens.slice(at);
    node.kv = node.kv.slice(at);
    node.routing = node.routing.slice(at * width);
    node.kvBytes -= top.kvBytes;
    node.parent = top;
    parent.children.set(childKey(top.tokens, 0, this.pageSize), top);
    top.children.set(childKey(node.tokens, 0, this.pageSize), node);
    this.counters.nodes++;
    return top;
  }

  /** Nodes from below the root down to `node`, in order. */
  private chainTo(node: RadixNode<KV>): RadixNode<KV>[] {
    const chain: RadixNode<KV>[] = [];
    for (let link: RadixNode<KV> | null = node; link !== null && link.parent !== null; link = link.parent) {
      chain.push(link);
    }
    return chain.reverse();
  }

  private touch(node: RadixNode<KV>): void {
    const now = ++this.clock;
    for (let link: RadixNode<KV> | null = node; link !== null; link = link.parent) link.lastAccess = now;
  }

  private lock(node: RadixNode<KV>): void {
    for (let link: RadixNode<KV> | null = node; link?.parent != null; link = link.parent) link.lockCount++;
  }

  private unlock(node: RadixNode<KV>): void {
    const handles: KV[] = [];
    for (let link: RadixNode<KV> | null = node; link?.parent != null; link = link.parent) {
      link.lockCount--;
      if (link.stale && link.lockCount === 0) this.free(link, handles);
    }
    if (handles.length > 0) this.options.onEvict?.(handles, 'weight-version');
  }

  /** Evicts what it takes to fit `bytes` more, or throws CACHE_FULL with nothing changed. */
  private makeRoom(bytes: number, walk: WalkResult<KV>, evicted: KV[]): void {
    const shortfall = this.bytesUsed + bytes - this.budgetBytes;
    if (shortfall <= 0) return;
    if (bytes > this.budgetBytes) {
      // No eviction can help: the new entries alone exceed the budget.
      throw new MoerlError(
        'CACHE_FULL',
        `Router cache cannot fit an insert of ${bytes} bytes: it alone exceeds the whole budget of ${this.budgetBytes} bytes (budgetBytes); raise budgetBytes or cache shorter prefixes`,
        { details: { needed: bytes, bytesUsed: this.bytesUsed, budgetBytes: this.budgetBytes } },
      );
    }
    // The nodes the insert extends must survive the eviction it triggers.
    const pinned = walk.partial?.child ?? walk.node;
    this.lock(pinned);
    const plan = planEviction(this.root, shortfall, (node) => this.bytesOf(node));
    this.unlockPinned(pinned);
    if (plan.bytes < shortfall) {
      throw new MoerlError(
        'CACHE_FULL',
        `Router cache cannot fit ${bytes} more bytes: ${this.bytesUsed} of ${this.budgetBytes} used and only ${plan.bytes} can be evicted (the rest is locked by matches in use)`,
        {
          details: {
            needed: bytes,
            bytesUsed: this.bytesUsed,
            budgetBytes: this.budgetBytes,
            evictable: plan.bytes,
          },
        },
      );
    }
    this.remove(plan.nodes, evicted);
  }

  private unlockPinned(node: RadixNode<KV>): void {
    for (let link: RadixNode<KV> | null = node; link?.parent != null; link = link.parent) link.lockCount--;
  }

  private remove(nodes: readonly RadixNode<KV>[], handles: KV[]): void {
    for (const node of nodes) {
      node.parent?.children.delete(childKey(node.tokens, 0, this.pageSize));
      this.counters.evictedNodes++;
      this.counters.evictedPositions += node.positions;
      this.free(node, handles);
    }
  }

  private free(node: RadixNode<KV>, handles: KV[]): void {
    for (const handle of node.kv) handles.push(handle);
    this.account(node, -1);
  }

  private account(node: RadixNode<KV>, sign: 1 | -1): void {
    this.counters.nodes += sign;
    this.counters.positions += sign * node.positions;
    this.counters.kvBytes += sign * node.kvBytes;
  }

  private bytesOf(node: RadixNode<KV>): number {
    return node.kvBytes + node.positions * this.bytesPerPosition;
  }

  private forEachNode(visit: (node: RadixNode<KV>) => void): void {
    const stack = [...this.root.children.values()];
    while (stack.length > 0) {
      const node = stack.pop()!;
      visit(node);
      for (const child of node.children.values()) stack.push(child);
    }
  }

  /** Positions below `shared` whose inserted routing differs from the cached rows. */
  private conflictingPositions(
    chain: readonly RadixNode<KV>[],
    shared: number,
    routing: RoutingRecord,
  ): number[] {
    const conflicts: number[] = [];
    const { moeLayers, topK } = this.options;
    let position = 0;
    for (const node of chain) {
      for (let index = 0; index < node.positions && position < shared; index++, position++) {
        if (
          !sameRouting(
            node.routing,
            index * this.rowWidth,
            routing.experts,
            position * this.rowWidth,
            moeLayers,
            topK,
          )
        ) {
          conflicts.push(position);
        }
      }
    }
    return conflicts;
  }

  private cachedRow(chain: readonly RadixNode<KV>[], position: number): ExpertIdArray {
    let start = 0;
    for (const node of chain) {
      if (position < start + node.positions) {
        const offset = (position - start) * this.rowWidth;
        return node.routing.slice(offset, offset + this.rowWidth);
      }
      start += node.positions;
    }
    throw new MoerlError('INVALID_ARGUMENT', `position ${position} is not cached`);
  }

  private reportConflicts(
    conflicts: readonly number[],
    chain: readonly RadixNode<KV>[],
    routing: RoutingRecord,
  ) {
    const first = conflicts[0]!;
    this.options.onRoutingConflict?.({
      positions: conflicts,
      firstCached: this.cachedRow(chain, first),
      firstInserted: routing.experts.slice(first * this.rowWidth, (first + 1) * this.rowWidth),
      weightVersion: this.currentVersion,
    });
  }

  /** Handles of shared positions that are not the cached ones, and of positions past the last whole page. */
  private unusedHandles(
    chain: readonly RadixNode<KV>[],
    shared: number,
    limit: number,
    kv: readonly KV[],
  ): KV[] {
    const unused: KV[] = [];
    let position = 0;
    for (const node of chain) {
      for (let index = 0; index < node.positions && position < shared; index++, position++) {
        if (kv[position] !== node.kv[index]) unused.push(kv[position]!);
      }
    }
    for (let index = limit; index < kv.length; index++) unused.push(kv[index]!);
    return unused;
  }
}

/** Creates a radix prefix cache of KV handles and routing rows. See the package README for a walkthrough. */
export function createRouterCache<KV extends KvHandle>(options: RouterCacheOptions<KV>): RouterCache<KV> {
  return new RadixRouterCache(options);
}
