import { join } from 'node:path';
import {
  createModelConfig,
  type ModelConfig,
  MoerlError,
  modelWeightsPath,
  type NamedTensors,
  readHfConfigFile,
  readModelWeights,
  type SamplingParams,
  validateWeights,
} from '@moerl/core';
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

/**
 * The run's model: the Hugging Face directory of `model.path` (its config.json), else the config's own size
 * fields around the task's tokenizer. A directory must hold the tokenizer's vocabulary and the task's longest
 * prompt and answer (`CONFIG_INVALID` otherwise).
 */
export async function modelConfigOf(config: RunConfig, task: Task): Promise<ModelConfig> {
  const path = config.model.path;
  if (path === undefined) return modelConfigFor(config, task);
  const model = await readHfConfigFile(join(path, 'config.json'));
  const refuse = (problem: string) =>
    new MoerlError('CONFIG_INVALID', `model.path ${path}: ${problem}`, {
      details: { field: 'model.path', path },
    });
  if (task.tokenizer.vocabSize > model.vocabSize) {
    throw refuse(
      `its vocabulary has ${model.vocabSize} tokens, the task's tokenizer ${task.tokenizer.vocabSize}; give the task the model's tokenizer (task.dataset.tokenizer)`,
    );
  }
  const needed = maxPositionsOf(config, task);
  if (needed > model.maxPositionEmbeddings) {
    throw refuse(`it holds ${model.maxPositionEmbeddings} positions, the task needs ${needed}`);
  }
  return model;
}

/** The weights RL (or the warm start) begins from: `model.path`'s, else random ones from the run's seed. */
export async function initialWeights(config: RunConfig, modelConfig: ModelConfig): Promise<NamedTensors> {
  const path = config.model.path;
  if (path === undefined) return createRandomWeights(modelConfig, config.model.initSeed ?? config.seed);
  const weights = await readModelWeights(path);
  validateWeights(modelConfig, weights, { subject: modelWeightsPath(path) });
  return weights;
}

/** The tfjs trainer options every trainer of a run shares (the warm start's and RL's). */
export function sharedTrainerOptions(config: RunConfig): {
  readonly weightDecay: number;
  readonly routerAuxLossCoefficient: number;
  readonly microBatchSize?: number;
} {
  const { microBatchSize } = config.train;
  return {
    weightDecay: config.train.weightDecay,
    routerAuxLossCoefficient: config.train.routerAuxLossCoefficient,
    ...(microBatchSize === undefined ? {} : { microBatchSize }),
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
