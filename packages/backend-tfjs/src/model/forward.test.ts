import type { ModelConfig, NamedTensors, RoutingRecord } from '@moerl/core';
import { createRandomWeights, createReferenceModel, tinyConfigs, tinyTokens } from '@moerl/testkit';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { activateTfjsBackend } from '../runtime/tfjs-runtime.js';
import { type ExpertComputation, forwardHidden, headLogits } from './forward.js';
import { createParameters, disposeParameters, type ModelParameters } from './parameters.js';
import { createPositionTableCache, type PositionTableCache } from './position-tables.js';

beforeAll(async () => {
  await activateTfjsBackend('tfjs-wasm');
});

/** Largest |a − b| / max(1, |b|). */
function worstRelative(actual: Float32Array, expected: Float32Array): number {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let index = 0; index < actual.length; index++) {
    const difference = Math.abs(actual[index]! - expected[index]!) / Math.max(1, Math.abs(expected[index]!));
    worst = Number.isNaN(difference) ? Number.POSITIVE_INFINITY : Math.max(worst, difference);
  }
  return worst;
}

// Two sequences of different lengths in one right-padded batch: the shorter one checks that padding
// changes nothing for real positions.
const long = tinyTokens.slice(0, 12);
const short = tinyTokens.slice(3, 8);

function logitsOf(
  config: ModelConfig,
  weights: NamedTensors,
  options: { replay?: RoutingRecord[]; experts?: ExpertComputation },
): { long: Float32Array; short: Float32Array; routing: RoutingRecord[] } {
  const parameters = createParameters(config, weights);
  const length = long.length;
  const tokens = new Int32Array(2 * length);
  tokens.set(long, 0);
  tokens.set(short, length);
  let routing: RoutingRecord[] = [];
  try {
    const logits = tf.tidy(() => {
      const result = forwardHidden(
        parameters,
        { size: 2, length, tokens, fed: [long.length, short.length] },
        {
          ...(options.replay === undefined ? {} : { replay: options.replay }),
          ...(options.experts === undefined ? {} : { experts: options.experts }),
        },
      );
      routing = result.routing;
      return Float32Array.from(headLogits(parameters, result.hidden).dataSync());
    });
    const vocab = config.vocabSize;
    return {
      long: logits.slice(0, long.length * vocab),
      short: logits.slice(length * vocab, (length + short.length) * vocab),
      routing,
    };
  } finally {
    disposeParameters(parameters);
  }
}

describe('forwardHidden + headLogits agree with the testkit reference', () => {
  for (const [name, config] of Object.entries(tinyConfigs)) {
    for (const experts of ['gathered', 'dense'] as const) {
      it(`${name}, ${experts} experts: free routing`, () => {
        const weights = createRandomWeights(config, 11);
        const reference = createReferenceModel(config, weights);
        const ours = logitsOf(config, weights, { experts });
        const wantLong = reference.forward(long);
        const wantShort = reference.forward(short);
        expect(worstRelative(ours.long, wantLong.logits)).toBeLessThanOrEqual(1e-4);
        expect(worstRelative(ours.short, wantShort.logits)).toBeLessThanOrEqual(1e-4);
        expect([...ours.routing[0]!.experts]).toEqual([...wantLong.routing.experts]);
        expect([...ours.routing[1]!.experts]).toEqual([...wantShort.routing.experts]);
      });

      it(`${name}, ${experts} experts: replaying another model's routing`, () => {
        const weights = createRandomWeights(config, 11);
        const reference = createReferenceModel(config, weights);
        const other = createReferenceModel(config, createRandomWeights(config, 99));
        const replay = [other.forward(long).routing, other.forward(short).routing];
        const ours = logitsOf(config, weights, { replay, experts });
        const wantLong = reference.forward(long, { routing: replay[0]! });
        const wantShort = reference.forward(short, { routing: replay[1]! });
        expect(worstRelative(ours.long, wantLong.logits)).toBeLessThanOrEqual(1e-4);
        expect(worstRelative(ours.short, wantShort.logits)).toBeLessThanOrEqual(1e-4);
        // The replayed routing must differ from the model's own, or this case proves nothing.
        expect(worstRelative(wantLong.logits, reference.forward(long).logits)).toBeGreaterThan(1e-3);
        expect([...ours.routing[0]!.experts]).toEqual([...replay[0]!.experts]);
      });
    }
  }
});

describe('forwardHidden with a position table cache', () => {
  const config = tinyConfigs.moe;

  /** Logits of one sequence of the first `length` tiny tokens, inside tf.tidy like the trainer. */
  function logits(parameters: ModelParameters, length: number, cache?: PositionTableCache): Float32Array {
    return tf.tidy(() => {
      const result = forwardHidden(
        parameters,
        { size: 1, length, tokens: Int32Array.from(tinyTokens.slice(0, length)), fed: [length] },
        cache === undefined ? {} : { positionTables: cache },
      );
      return Float32Array.from(headLogits(parameters, result.hidden).dataSync());
    });
  }

  it('gives bit-identical logits with and without the cache, across lengths, hits and evictions', () => {
    const parameters = createParameters(config, createRandomWeights(config, 5));
    const cache = createPositionTableCache(config, 2);
    try {
      // 7 twice (a hit), then enough other lengths that 7 is evicted and rebuilt.
      for (const length of [7, 3, 7, 12, 5, 16, 7, 1]) {
        expect(logits(parameters, length, cache)).toEqual(logits(parameters, length));
      }
    } finally {
      cache.dispose();
      disposeParameters(parameters);
    }
  });

  it('holds no more tensors than the cache bound across repeated forwards, and dispose frees them', () => {
    const before = tf.memory().numTensors;
    const parameters = createParameters(config, createRandomWeights(config, 5));
    const withParameters = tf.memory().numTensors;
    const cache = createPositionTableCache(config, 3);
    for (let round = 0; round < 3; round++) {
      for (const length of [2, 4, 6, 8, 10]) logits(parameters, length, cache);
      // Four tensors (cos, sin, rotate_half, mask) per cached length, nothing else left behind.
      expect(tf.memory().numTensors).toBe(withParameters + 3 * 4);
    }
    cache.dispose();
    expect(tf.memory().numTensors).toBe(withParameters);
    disposeParameters(parameters);
    expect(tf.memory().numTensors).toBe(before);
  });
});
