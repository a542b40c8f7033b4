import { createRoutingRecord, type FinishReason, type ModelConfig, type RolloutEngine } from '@moerl/core';

/** An engine that answers every request with outputs [4, 5] after a 2-token prompt: 3 routing rows. */
export function stubEngine(
  config: ModelConfig,
  ids: readonly number[],
  finishReason: FinishReason,
): RolloutEngine {
  return {
    specificationVersion: 'v1',
    backendName: 'stub',
    capabilities: { recordRouting: true, prefixCache: false, batchedGeneration: false, precisions: ['fp32'] },
    config,
    generate: async (requests) =>
      requests.map((request) => ({
        id: request.id,
        groupId: request.groupId,
        promptIds: request.promptIds,
        responseIds: Int32Array.of(4, 5),
        engineLogprobs: Float32Array.of(-1, -2),
        routing: createRoutingRecord(
          { positions: 3, moeLayers: 1, topK: 2, numExperts: config.numExperts },
          ids,
        ),
        finishReason,
        weightVersion: 0,
      })),
    updateWeights: async () => {},
    stats: () => ({
      weightVersion: 0,
      requests: 0,
      promptTokens: 0,
      generatedTokens: 0,
      cachedPromptTokens: 0,
      generateSeconds: 0,
    }),
    dispose: async () => {},
  };
}
