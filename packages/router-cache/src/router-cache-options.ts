import type { ExpertIdArray } from '@moerl/core';
import { MoerlError } from '@moerl/core';

/** What the cache needs to know about an engine's KV entry: its size. Everything else stays opaque. */
export interface KvHandle {
  readonly bytes: number;
}

/** Why handles are handed back through `onEvict`. */
export type EvictionReason = 'budget' | 'explicit' | 'weight-version';

/** A re-inserted prefix whose routing differs from what the cache holds for it. */
export interface RoutingConflictReport {
  /** Positions (indices into the inserted tokens) whose expert set differs from the cached one. */
  readonly positions: readonly number[];
  /** Cached and inserted rows (`moeLayers × topK` ids) of the first conflicting position. */
  readonly firstCached: ExpertIdArray;
  readonly firstInserted: ExpertIdArray;
  readonly weightVersion: number;
}

export interface RouterCacheOptions<KV extends KvHandle> {
  /** MoE layers of the model (the layer axis of a RoutingRecord). */
  readonly moeLayers: number;
  readonly topK: number;
  readonly numExperts: number;
  /** Upper bound on KV + routing + overhead bytes held by the cache. */
  readonly budgetBytes: number;
  /** Tokens per KV page; only whole pages are cached and matched. Default 1. */
  readonly pageSize?: number;
  /** Weight version of the engine when the cache is created. Default 0. */
  readonly weightVersion?: number;
  /**
   * Bytes charged per cached position for the token id, the handle slot and its share of the tree node.
   * Default 16. Charged per position (not per node) so that splitting an edge never changes the total.
   */
  readonly positionOverheadBytes?: number;
  /** Handles the cache lets go of; the engine frees them. Called after the cache state is updated. */
  readonly onEvict?: (handles: readonly KV[], reason: EvictionReason) => void;
  /** Routing of a re-inserted prefix differs from the cached routing (non-determinism in the engine). */
  readonly onRoutingConflict?: (report: RoutingConflictReport) => void;
}

export interface ResolvedRouterCacheOptions<KV extends KvHandle> {
  readonly moeLayers: number;
  readonly topK: number;
  readonly numExperts: number;
  readonly budgetBytes: number;
  readonly pageSize: number;
  readonly weightVersion: number;
  readonly positionOverheadBytes: number;
  readonly onEvict: ((handles: readonly KV[], reason: EvictionReason) => void) | undefined;
  readonly onRoutingConflict: ((report: RoutingConflictReport) => void) | undefined;
}

function requireInteger(name: string, value: unknown, minimum: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < minimum) {
    throw new MoerlError(
      'CONFIG_INVALID',
      `router cache option ${name} must be an integer ≥ ${minimum}, found ${String(value)}`,
      { details: { field: name, found: value } },
    );
  }
  return value;
}

export function resolveRouterCacheOptions<KV extends KvHandle>(
  options: RouterCacheOptions<KV>,
): ResolvedRouterCacheOptions<KV> {
  const moeLayers = requireInteger('moeLayers', options.moeLayers, 0);
  const topK = requireInteger('topK', options.topK, 1);
  const numExperts = requireInteger('numExperts', options.numExperts, topK);
  if (numExperts > 65_536) {
    throw new MoerlError(
      'CONFIG_INVALID',
      `router cache option numExperts must be ≤ 65536, found ${numExperts}`,
      {
        details: { field: 'numExperts', found: numExperts },
      },
    );
  }
  const budgetBytes = requireInteger('budgetBytes', options.budgetBytes, 0);
  const pageSize = requireInteger('pageSize', options.pageSize ?? 1, 1);
  const weightVersion = requireInteger('weightVersion', options.weightVersion ?? 0, 0);
  const positionOverheadBytes = requireInteger(
    'positionOverheadBytes',
    options.positionOverheadBytes ?? 16,
    0,
  );
  return {
    moeLayers,
    topK,
    numExperts,
    budgetBytes,
    pageSize,
    weightVersion,
    positionOverheadBytes,
    onEvict: options.onEvict,
    onRoutingConflict: options.onRoutingConflict,
  };
}
