import { createModelConfig } from '@moerl/core';
import { createReverseTask } from '../tasks/builtin-tasks.js';

/** The task and small MoE model the multi-turn rollout tests converse with (room for several turns). */
export const conversationTask = createReverseTask(5);
export const conversationModel = createModelConfig({
  vocabSize: conversationTask.tokenizer.vocabSize,
  hiddenSize: 32,
  numLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  numExperts: 8,
  topK: 2,
  moeIntermediateSize: 16,
  intermediateSize: 32,
  mlpOnlyLayers: [],
  normTopKProb: true,
  maxPositionEmbeddings: 128,
});
