import type { RoutingRecord } from '@moerl/core';
import { MoerlError, validateRoutingRecord } from '@moerl/core';
import type { KvHandle } from './router-cache-options.js';

const MAX_TOKEN_ID = 2 ** 31 - 1;

/** Token ids must be integers in [0, 2^31) — the cache stores them as Int32. */
export function validateTokens(tokens: ArrayLike<number>, operation: string): void {
  if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `${operation}: tokens must be an array of token ids, found ${String(tokens)}`,
      {
        details: { field: 'tokens' },
      },
    );
  }
  for (let index = 0; index < tokens.length; index++) {
    const token = tokens[index];
    if (typeof token !== 'number' || !Number.isInteger(token) || token < 0 || token > MAX_TOKEN_ID) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `${operation}: tokens[${index}] must be an integer in [0, ${MAX_TOKEN_ID}], found ${String(token)}`,
        { details: { field: 'tokens', index, found: token } },
      );
    }
  }
}

export interface InsertExpectation {
  readonly moeLayers: number;
  readonly topK: number;
  readonly numExperts: number;
}

/** Everything `insert` checks before it touches the tree, so a bad call leaves the cache unchanged. */
export function validateInsert<KV extends KvHandle>(
  tokens: ArrayLike<number>,
  kv: readonly KV[],
  routing: RoutingRecord,
  expected: InsertExpectation,
): void {
  validateTokens(tokens, 'insert');
  if (!Array.isArray(kv)) {
    throw new MoerlError('INVALID_ARGUMENT', 'insert: kv must be an array with one handle per token', {
      details: { field: 'kv' },
    });
  }
  if (kv.length !== tokens.length) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `insert: kv must hold one handle per token (${tokens.length}), found ${kv.length}`,
      { details: { field: 'kv', expected: tokens.length, found: kv.length } },
    );
  }
  for (let index = 0; index < kv.length; index++) {
    const bytes = (kv[index] as KvHandle | undefined)?.bytes;
    if (typeof bytes !== 'number' || !Number.isFinite(bytes) || bytes < 0) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `insert: kv[${index}].bytes must be a finite number ≥ 0, found ${String(bytes)}`,
        { details: { field: 'kv', index, found: bytes } },
      );
    }
  }
  validateRoutingRecord(routing, { ...expected, positions: tokens.length });
}
