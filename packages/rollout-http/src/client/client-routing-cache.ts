import { type ModelConfig, MoerlError, moeLayerIndices, type RoutingRecord } from '@moerl/core';
import { createRouterCache, type RouterCache, type RouterCacheStats } from '@moerl/router-cache';

/** The client holds routing rows only; the KV lives on the servers, so every handle weighs nothing. */
interface NoKv {
  readonly bytes: 0;
}
const NO_KV: NoKv = Object.freeze({ bytes: 0 });

/** A cached prefix held for one request, with the server weight version it was fetched at. */
export interface ClientRoutingMatch {
  readonly length: number;
  readonly routing: RoutingRecord;
  readonly weightVersion: string;
  release(): void;
}

/**
 * The routing rows of sequences already fetched, in a @moerl/router-cache radix tree keyed by the server's
 * weight version: a request asks the server only for rows past the longest cached prefix of its prompt.
 * Servers name versions with strings, the tree counts them, so a new name moves the tree to the next
 * version and drops everything fetched at the old one.
 */
export class ClientRoutingCache {
  readonly #cache: RouterCache<NoKv>;
  #version = 0;
  #label: string | undefined;
  /** Inserts that did not fit beside the prefixes held by requests in flight (caching is best effort). */
  skippedFull = 0;

  constructor(config: ModelConfig, budgetBytes: number) {
    this.#cache = createRouterCache<NoKv>({
      moeLayers: moeLayerIndices(config).length,
      topK: config.topK,
      numExperts: config.numExperts,
      budgetBytes,
    });
  }

  /** The longest cached prefix of `tokens`; hold it until the request is answered, then `release()`. */
  match(tokens: Int32Array): ClientRoutingMatch | undefined {
    const label = this.#label;
    if (label === undefined) return undefined;
    const hit = this.#cache.match(tokens);
    if (hit.length === 0) {
      hit.release();
      return undefined;
    }
    return { length: hit.length, routing: hit.routing, weightVersion: label, release: () => hit.release() };
  }

  /** Caches the routing of `tokens` (one row per token fed) as fetched from a server at `weightVersion`. */
  insert(tokens: Int32Array, routing: RoutingRecord, weightVersion: string): void {
    if (weightVersion !== this.#label) {
      // A lagging server (a rolling update, mixed versions allowed) must not wipe rows of newer weights.
      if (isOlder(weightVersion, this.#label)) return;
      this.#cache.setWeightVersion(++this.#version);
      this.#label = weightVersion;
    }
    try {
      this.#cache.insert(tokens, new Array<NoKv>(tokens.length).fill(NO_KV), routing);
    } catch (error) {
      if (!MoerlError.isInstance(error, 'CACHE_FULL')) throw error;
      this.skippedFull++;
    }
  }

  /** Forgets everything (after a weight update pushed from this client). */
  clear(): void {
    this.#cache.setWeightVersion(++this.#version);
    this.#label = undefined;
  }

  stats(): RouterCacheStats {
    return this.#cache.stats();
  }
}

/** Versions are compared as numbers when both are integer strings (SGLang's and ours are); else never older. */
function isOlder(version: string, than: string | undefined): boolean {
  const integer = /^\d+$/;
  return than !== undefined && integer.test(version) && integer.test(than) && Number(version) < Number(than);
}
