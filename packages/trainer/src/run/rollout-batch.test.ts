import { createModelConfig, createRoutingRecord, prepareTrainingBatch, type Trajectory } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { trainingBatchOf } from './rollout-batch.js';

const config = createModelConfig({
  vocabSize: 8,
  hiddenSize: 8,
  numLayers: 1,
  numAttentionHeads: 2,
  numKeyValueHeads: 1,
  numExperts: 4,
  topK: 2,
  moeIntermediateSize: 4,
  intermediateSize: 8,
  mlpOnlyLayers: [],
  maxPositionEmbeddings: 16,
});

function trajectory(engineVersion: number, routeVersion: number): Trajectory {
  const routing = createRoutingRecord(
    { positions: 3, moeLayers: 1, topK: 2, numExperts: 4 },
    [0, 1, 2, 3, 1, 2],
  );
  return {
    id: 'a',
    groupId: 'g',
    promptIds: Int32Array.of(1, 2),
    responseIds: Int32Array.of(3, 4),
    engineLogprobs: Float32Array.of(-1, -2),
    routing: { ...routing, weightVersion: routeVersion },
    finishReason: 'stop',
    weightVersion: engineVersion,
  };
}

describe('trainingBatchOf', () => {
  it('pairs each route with the version of its engine logprobs, so a mismatch is refused, not replayed', () => {
    const consistent = trainingBatchOf([trajectory(3, 3)], 'engine');
    expect(consistent.sequences[0]!.weightVersion).toBe(3);
    expect(() => prepareTrainingBatch(config, consistent, 'replay')).not.toThrow();
    const mixed = trainingBatchOf([trajectory(3, 2)], 'engine');
    expect(() => prepareTrainingBatch(config, mixed, 'replay')).toThrow(
      expect.objectContaining({ code: 'ROUTING_STALE' }),
    );
  });
});
