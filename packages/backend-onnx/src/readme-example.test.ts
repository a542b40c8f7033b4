import { createModelConfig, DEFAULT_SAMPLING_PARAMS } from '@moerl/core';
import { createRandomWeights } from '@moerl/testkit';
import { expect, it } from 'vitest';
import { createOnnxRolloutEngine } from './index.js';

// The README's example, with its printed claims turned into assertions.
it('the README example runs and its comments hold', async () => {
  const config = createModelConfig({
    vocabSize: 48,
    hiddenSize: 32,
    numLayers: 4,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    numExperts: 8,
    topK: 2,
    moeIntermediateSize: 16,
    normTopKProb: true,
    mlpOnlyLayers: [0],
  });
  const engine = await createOnnxRolloutEngine({
    config,
    weights: createRandomWeights(config, 0),
    precision: 'bf16',
  });
  const promptIds = Int32Array.of(5, 17, 3, 9, 12, 40, 7);
  const group = await engine.generate(
    Array.from({ length: 4 }, (_, index) => ({ id: `s${index}`, groupId: 'q0', promptIds })),
    { ...DEFAULT_SAMPLING_PARAMS, temperature: 1, maxNewTokens: 8, seed: 42 },
  );
  for (const trajectory of group) {
    expect(trajectory.routing?.positions).toBe(promptIds.length + trajectory.responseIds.length - 1);
    expect(trajectory.routing?.moeLayers).toBe(3);
  }
  expect(group.map((trajectory) => trajectory.cachedPromptTokens)).toEqual([0, 7, 7, 7]);
  await engine.dispose();
});
