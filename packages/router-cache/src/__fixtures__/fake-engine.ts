import type { RoutingRecord } from '@moerl/core';
import { createRoutingRecord } from '@moerl/core';
import type { KvHandle } from '../router-cache-options.js';

/** A stand-in for an engine's KV entry that remembers which prefix and weights produced it. */
export interface FakeKv extends KvHandle {
  readonly id: number;
  readonly prefix: string;
  readonly weightVersion: number;
}

export interface FakeModelShape {
  readonly moeLayers: number;
  readonly topK: number;
  readonly numExperts: number;
}

/** Rolling hash of each prefix tokens[0..i]: what a deterministic model's routing depends on. */
export function prefixHashes(tokens: ArrayLike<number>): number[] {
  const hashes: number[] = [];
  let hash = 17;
  for (let index = 0; index < tokens.length; index++) {
    hash = (Math.imul(hash, 31) + tokens[index]! + 7) >>> 0;
    hashes.push(hash);
  }
  return hashes;
}

/** Distinct experts per row, a deterministic function of the prefix (and `salt` to fake non-determinism). */
export function routingFor(tokens: ArrayLike<number>, shape: FakeModelShape, salt = 0): RoutingRecord {
  const ids: number[] = [];
  for (const hash of prefixHashes(tokens)) {
    for (let layer = 0; layer < shape.moeLayers; layer++) {
      const start = (hash + layer * 13 + salt) % shape.numExperts;
      for (let k = 0; k < shape.topK; k++) ids.push((start + k) % shape.numExperts);
    }
  }
  return createRoutingRecord({ ...shape, positions: tokens.length }, ids);
}

let nextId = 0;

export function kvFor(tokens: ArrayLike<number>, weightVersion: number, bytesPerToken: number): FakeKv[] {
  const handles: FakeKv[] = [];
  for (let index = 0; index < tokens.length; index++) {
    handles.push({
      id: nextId++,
      bytes: bytesPerToken,
      prefix: Array.prototype.slice.call(tokens, 0, index + 1).join(','),
      weightVersion,
    });
  }
  return handles;
}
