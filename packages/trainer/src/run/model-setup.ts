import { createModelConfig, type ModelConfig, type NamedTensors } from '@moerl/core';
import { createRandomWeights } from '@moerl/testkit';
import type { RunConfig } from '../config/run-config-schema.js';
import type { Task } from '../tasks/task.js';

/** Response length limit: the task's longest answer with its `<eos>`, plus two tokens of slack. */
export function maxNewTokensOf(config: RunConfig, task: Task): number {
  return config.rollout.maxNewTokens ?? task.maxAnswerTokens + 2;
}

/** The MoE model of a run: the config's shape over the task's vocabulary and lengths. */
export function modelConfigFor(config: RunConfig, task: Task): ModelConfig {
  const model = config.model;
  return createModelConfig({
    vocabSize: task.tokenizer.vocabSize,
    hiddenSize: model.hiddenSize,
    numLayers: model.numLayers,
    numAttentionHeads: model.numAttentionHeads,
    numKeyValueHeads: model.numKeyValueHeads,
    numExperts: model.numExperts,
    topK: model.topK,
    moeIntermediateSize: model.moeIntermediateSize,
    intermediateSize: model.intermediateSize,
    mlpOnlyLayers: model.mlpOnlyLayers,
    normTopKProb: model.normTopKProb,
    maxPositionEmbeddings: task.maxPromptTokens + maxNewTokensOf(config, task) + 1,
    bosTokenId: task.tokenizer.bosId,
    eosTokenId: task.tokenizer.eosId,
  });
}

export function initialWeights(config: RunConfig, modelConfig: ModelConfig): NamedTensors {
  return createRandomWeights(modelConfig, config.model.initSeed ?? config.seed);
}

/** The tfjs trainer options every trainer of a run shares (the warm start's and RL's). */
export function sharedTrainerOptions(config: RunConfig): {
  readonly weightDecay: number;
  readonly routerAuxLossCoefficient: number;
} {
  return {
    weightDecay: config.train.weightDecay,
    routerAuxLossCoefficient: config.train.routerAuxLossCoefficient,
  };
}
