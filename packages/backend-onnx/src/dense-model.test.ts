import { createModelConfig, DEFAULT_SAMPLING_PARAMS } from '@moerl/core';
import { createRandomWeights, createReferenceRolloutEngine } from '@moerl/testkit';
import { expect, it } from 'vitest';
import { createOnnxRolloutEngine } from './index.js';

it('a dense model (no experts) generates like the reference, with empty routing rows', async () => {
  const config = createModelConfig({
    vocabSize: 32,
    hiddenSize: 16,
    numLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    numExperts: 0,
    topK: 0,
    moeIntermediateSize: 0,
    intermediateSize: 24,
    maxPositionEmbeddings: 64,
  });
  const weights = createRandomWeights(config, 5);
  const requests = [
    { id: 'a', groupId: 'a', promptIds: Int32Array.of(1, 2, 3) },
    { id: 'b', groupId: 'b', promptIds: Int32Array.of(4, 5, 6, 7, 8) },
  ];
  const params = { ...DEFAULT_SAMPLING_PARAMS, maxNewTokens: 5, seed: 3 };
  const engine = await createOnnxRolloutEngine({ config, weights });
  const ours = await engine.generate(requests, params);
  await engine.dispose();
  const theirs = await createReferenceRolloutEngine({ config, weights }).generate(requests, params);
  ours.forEach((trajectory, index) => {
    expect([...trajectory.responseIds]).toEqual([...theirs[index]!.responseIds]);
    expect(trajectory.routing).toMatchObject({ moeLayers: 0, positions: trajectory.promptIds.length + 4 });
  });
});
