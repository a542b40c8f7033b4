import { createModelConfig, type ModelConfig, type NamedTensors, type SamplingParams } from '@moerl/core';
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
    maxPositionEmbeddings: maxPositionsOf(config, task),
    bosTokenId: task.tokenizer.bosId,
    eosTokenId: task.tokenizer.eosId,
  });
}

/**
 * Positions the model must hold: the longest prompt and answer, or for a multi-turn task every turn's
 * tokens and every observation between them.
 */
function maxPositionsOf(config: RunConfig, task: Task): number {
  const perTurn = maxNewTokensOf(config, task);
  const environment = task.environment;
  if (environment === undefined) return task.maxPromptTokens + perTurn + 1;
  return (
    task.maxPromptTokens +
    environment.maxTurns * perTurn +
    (environment.maxTurns - 1) * environment.maxObservationTokens +
    1
  );
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

/** How the run's engine samples (the step's seed goes in per call). */
export function samplingParamsFor(config: RunConfig, task: Task, seed = 0): SamplingParams {
  return {
    temperature: config.rollout.temperature,
    topP: config.rollout.topP,
    topK: config.rollout.topK,
    maxNewTokens: maxNewTokensOf(config, task),
    stopTokenIds: [task.tokenizer.eosId],
    seed,
  };
}

/** The temperature the trainer scores sampled tokens at: the sampling one, or 1 for greedy sampling. */
export function logprobTemperatureOf(config: RunConfig): number {
  return config.rollout.temperature === 0 ? 1 : config.rollout.temperature;
}
