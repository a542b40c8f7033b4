import * as tf from '@tensorflow/tfjs-core';
import { ropeTables } from './layers.js';

/** What a forward pass over `length` positions needs that depends on the length only. */
export interface PositionTensors {
  /** `[1, length, 1, headDim]` RoPE cosines (each frequency twice: both halves), broadcast over batch and heads. */
  readonly cos: tf.Tensor4D;
  /** `[1, length, 1, headDim]` RoPE sines, laid out like `cos`. */
  readonly sin: tf.Tensor4D;
  /** `[headDim, headDim]`: `x · rotateHalf = concat(−x₂, x₁)`, RoPE's rotate_half as a product. */
  readonly rotateHalf: tf.Tensor2D;
  /** `[length, length]` additive causal mask: 0 on and below the diagonal, −1e9 above. */
  readonly causalMask: tf.Tensor2D;
}

/** Builds the tensors of one length afresh (owned by the caller or the enclosing `tf.tidy`). */
export function createPositionTensors(length: number, headDim: number, theta: number): PositionTensors {
  const tables = ropeTables(length, headDim, theta);
  const causal = new Float32Array(length * length);
  for (let target = 0; target < length; target++) {
    for (let source = target + 1; source < length; source++) causal[target * length + source] = -1e9;
  }
  const half = headDim / 2;
  const bothHalves = (table: Float32Array) => {
    const full = new Float32Array(length * headDim);
    for (let position = 0; position < length; position++) {
      const row = table.subarray(position * half, (position + 1) * half);
      full.set(row, position * headDim);
      full.set(row, position * headDim + half);
    }
    return tf.tensor4d(full, [1, length, 1, headDim]);
  };
  // Exact: each output sums one ±1 product and zeros.
  const rotation = new Float32Array(headDim * headDim);
  for (let index = 0; index < half; index++) {
    rotation[(index + half) * headDim + index] = -1;
    rotation[index * headDim + index + half] = 1;
  }
  return {
    cos: bothHalves(tables.cos),
    sin: bothHalves(tables.sin),
    rotateHalf: tf.tensor2d(rotation, [headDim, headDim]),
    causalMask: tf.tensor2d(causal, [length, length]),
  };
}

/**
 * The position tensors of the most recently used lengths of one model, so that repeated forward passes do
 * not rebuild them. Owned by one trainer (its config fixes headDim and theta); `dispose` frees them.
 */
export interface PositionTableCache {
  /**
   * The tensors for `length`, built on first use and kept out of any `tf.tidy` scope. They stay valid
   * until `maxEntries` other lengths have been asked for since (the least recently used is disposed).
   */
  get(length: number): PositionTensors;
  /** Lengths currently held (at most `maxEntries`). */
  readonly size: number;
  readonly maxEntries: number;
  dispose(): void;
}

export const DEFAULT_POSITION_CACHE_ENTRIES = 8;

export function createPositionTableCache(
  model: { readonly headDim: number; readonly ropeTheta: number },
  maxEntries = DEFAULT_POSITION_CACHE_ENTRIES,
): PositionTableCache {
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new Error(`internal: position cache needs at least one entry, found ${maxEntries}`);
  }
  // A Map iterates in insertion order: re-inserting on every hit keeps the least recently used first.
  const entries = new Map<number, PositionTensors>();
  const release = (tensors: PositionTensors) =>
    tf.dispose([tensors.cos, tensors.sin, tensors.rotateHalf, tensors.causalMask]);
  return {
    get(length) {
      const hit = entries.get(length);
      if (hit !== undefined) {
        entries.delete(length);
        entries.set(length, hit);
        return hit;
      }
      if (entries.size >= maxEntries) {
        const [oldest, evicted] = entries.entries().next().value as [number, PositionTensors];
        entries.delete(oldest);
        release(evicted);
      }
      const built = createPositionTensors(length, model.headDim, model.ropeTheta);
      // Kept: the forward pass runs inside tf.tidy / tf.variableGrads, which would dispose them on exit.
      const tensors = {
        cos: tf.keep(built.cos),
        sin: tf.keep(built.sin),
        rotateHalf: tf.keep(built.rotateHalf),
        causalMask: tf.keep(built.causalMask),
      };
      entries.set(length, tensors);
      return tensors;
    },
    get size() {
      return entries.size;
    },
    maxEntries,
    dispose() {
      for (const tensors of entries.values()) release(tensors);
      entries.clear();
    },
  };
}
