import { describe, expect, it } from 'vitest';
import { createModelConfig } from '../config/model-config.js';
import { MoerlError } from '../errors/moerl-error.js';
import { createRoutingRecord } from '../routing/routing-record.js';
import { prepareTrainingBatch } from './prepare-training-batch.js';

const config = createModelConfig({
  vocabSize: 10,
  hiddenSize: 8,
  numLayers: 2,
  numAttentionHeads: 2,
  numKeyValueHeads: 1,
  numExperts: 4,
  topK: 2,
  moeIntermediateSize: 4,
  mlpOnlyLayers: [0],
});
const routing = (positions: number, id = 1) =>
  createRoutingRecord(
    { positions, moeLayers: 1, topK: 2, numExperts: 4 },
    Array.from({ length: positions * 2 }, (_, i) => (i % 2 === 0 ? 0 : id)),
  );
const sequence = (extra: object = {}) => ({
  promptIds: Int32Array.from([1, 2]),
  responseIds: Int32Array.from([3, 4]),
  ...extra,
});

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return MoerlError.isInstance(error) ? error.code : 'other';
  }
  return undefined;
}

describe('prepareTrainingBatch', () => {
  it('joins tokens and counts the fed positions', () => {
    const [prepared] = prepareTrainingBatch(config, { sequences: [sequence()] }, 'free');
    expect(Array.from(prepared!.tokens)).toEqual([1, 2, 3, 4]);
    expect(prepared).toMatchObject({ promptLength: 2, fed: 3, replay: undefined });
  });

  it('accepts routing of the fed positions, or one more (cut to the fed ones)', () => {
    const [exact, longer] = prepareTrainingBatch(
      config,
      { sequences: [sequence({ routing: routing(3) }), sequence({ routing: routing(4) })] },
      'replay',
    );
    expect(exact!.replay!.positions).toBe(3);
    expect(longer!.replay!.positions).toBe(3);
    expect(Array.from(longer!.replay!.experts)).toEqual(Array.from(routing(3).experts));
  });

  it('lists every sequence without routing in replay mode', () => {
    try {
      prepareTrainingBatch(
        config,
        { sequences: [sequence(), sequence({ routing: routing(3) }), sequence()] },
        'replay',
      );
      expect.unreachable();
    } catch (error) {
      expect(MoerlError.isInstance(error, 'ROUTING_MISSING')).toBe(true);
      expect((error as MoerlError).details).toEqual({ sequences: [0, 2] });
    }
  });

  it.each([
    ['too few positions', () => sequence({ routing: routing(2) }), 'ROUTING_SHAPE'],
    ['too many positions', () => sequence({ routing: routing(5) }), 'ROUTING_SHAPE'],
    ['an expert id out of range', () => sequence({ routing: routing(3, 4) }), 'ROUTING_SHAPE'],
    [
      'an empty prompt',
      () => sequence({ promptIds: new Int32Array(0), routing: routing(1) }),
      'INVALID_ARGUMENT',
    ],
    [
      'a token outside the vocabulary',
      () => sequence({ responseIds: Int32Array.from([3, 10]), routing: routing(3) }),
      'INVALID_ARGUMENT',
    ],
  ])('rejects %s', (_name, make, code) => {
    expect(codeOf(() => prepareTrainingBatch(config, { sequences: [make()] }, 'replay'))).toBe(code);
  });

  it('rejects an unknown mode and a batch without sequences', () => {
    expect(codeOf(() => prepareTrainingBatch(config, { sequences: [] }, 'R3' as never))).toBe(
      'INVALID_ARGUMENT',
    );
    expect(codeOf(() => prepareTrainingBatch(config, {} as never, 'free'))).toBe('INVALID_ARGUMENT');
  });

  describe('versions travel with data', () => {
    const versioned = (routeVersion: number | undefined, logprobVersion: number | undefined) =>
      sequence({
        routing: { ...routing(3), ...(routeVersion === undefined ? {} : { weightVersion: routeVersion }) },
        ...(logprobVersion === undefined ? {} : { weightVersion: logprobVersion }),
      });

    it('refuses a route of version v paired with engine logprobs of version w ≠ v, naming both', () => {
      try {
        prepareTrainingBatch(config, { sequences: [versioned(4, 4), versioned(3, 5)] }, 'replay');
        expect.unreachable();
      } catch (error) {
        expect(MoerlError.isInstance(error, 'ROUTING_STALE')).toBe(true);
        expect((error as MoerlError).message).toMatch(/Sequence 1: .*version 3.*version 5/);
        expect((error as MoerlError).details).toEqual({ sequence: 1, routingVersion: 3, logprobVersion: 5 });
      }
    });

    it('replays the mismatched pair when the caller allows it, and keeps the version on the cut record', () => {
      const [prepared] = prepareTrainingBatch(
        config,
        { sequences: [sequence({ routing: { ...routing(4), weightVersion: 3 }, weightVersion: 5 })] },
        { routing: 'replay', allowStaleRouting: true },
      );
      expect(prepared!.replay).toMatchObject({ positions: 3, weightVersion: 3 });
    });

    it('accepts a stale but consistent pair (both older than any trainer) and unknown versions', () => {
      const sequences = [versioned(2, 2), versioned(undefined, 7), versioned(7, undefined)];
      expect(prepareTrainingBatch(config, { sequences }, { routing: 'replay' })).toHaveLength(3);
    });

    it('ignores versions in free mode, where no routing is replayed', () => {
      expect(
        prepareTrainingBatch(config, { sequences: [versioned(3, 5)] }, 'free')[0]!.replay,
      ).toBeUndefined();
    });

    it('rejects a weightVersion that is not a non-negative integer', () => {
      expect(codeOf(() => prepareTrainingBatch(config, { sequences: [versioned(-1, -1)] }, 'replay'))).toBe(
        'ROUTING_SHAPE',
      );
    });
  });

  describe('partialReplay', () => {
    const batch = { sequences: [sequence({ routing: routing(3) })] };
    const partial = (minScoreRatio: number, routingMode: 'free' | 'replay' = 'replay') => ({
      routing: routingMode,
      partialReplay: { minScoreRatio },
    });

    it('is UNSUPPORTED for a trainer without the capability, never ignored', () => {
      expect(codeOf(() => prepareTrainingBatch(config, batch, partial(0.5)))).toBe('UNSUPPORTED');
      expect(codeOf(() => prepareTrainingBatch(config, batch, partial(0.5), { partialReplay: false }))).toBe(
        'UNSUPPORTED',
      );
      expect(prepareTrainingBatch(config, batch, partial(0.5), { partialReplay: true })).toHaveLength(1);
    });

    it.each([
      ['a negative ratio', -0.1, 'replay'],
      ['a non-finite ratio', Number.POSITIVE_INFINITY, 'replay'],
      ['free routing', 0.5, 'free'],
    ] as const)('rejects %s', (_name, ratio, mode) => {
      expect(
        codeOf(() => prepareTrainingBatch(config, batch, partial(ratio, mode), { partialReplay: true })),
      ).toBe('INVALID_ARGUMENT');
    });
  });
});
