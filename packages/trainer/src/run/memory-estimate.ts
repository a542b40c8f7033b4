import { totalmem } from 'node:os';
import { expectedWeights, type ModelConfig, MoerlError } from '@moerl/core';
import type { RunConfig } from '../config/run-config-schema.js';
import type { Task } from '../tasks/task.js';
import { maxNewTokensOf } from './model-setup.js';

/** What a run holds in memory at its peak, in bytes, by part (fp32 everywhere, as the backends store it). */
export interface MemoryEstimate {
  readonly parameters: number;
  /** The trainer's weights, AdamW's two moments and the gradients: 16 bytes a parameter. */
  readonly trainerBytes: number;
  /** The in-process engine's weights (and their quantised copy under bf16/fp16/fp8). */
  readonly engineBytes: number;
  /**
   * The largest activation: the logits of one trainer pass (the step's batch, or `train.microBatchSize`
   * sequences × positions × vocabulary), about three float arrays of that size (logits, softmax, gradient).
   */
  readonly logitsBytes: number;
  readonly totalBytes: number;
}

const GIB = 2 ** 30;
const gib = (bytes: number) => `${(bytes / GIB).toFixed(2)} GiB`;

export function estimateRunMemory(config: RunConfig, model: ModelConfig, task: Task): MemoryEstimate {
  const parameters = expectedWeights(model).reduce(
    (total, { shape }) => total + shape.reduce((product, size) => product * size, 1),
    0,
  );
  const trainerBytes = 16 * parameters;
  const inProcess = config.rollout.servers.length === 0;
  const engineBytes = inProcess ? (config.rollout.precision === 'fp32' ? 4 : 8) * parameters : 0;
  const sequences = Math.min(
    config.rollout.promptsPerStep * config.rollout.groupSize,
    config.train.microBatchSize ?? Number.POSITIVE_INFINITY,
  );
  const positions = task.maxPromptTokens + maxNewTokensOf(config, task);
  const logitsBytes = 3 * 4 * sequences * positions * model.vocabSize;
  return {
    parameters,
    trainerBytes,
    engineBytes,
    logitsBytes,
    totalBytes: trainerBytes + engineBytes + logitsBytes,
  };
}

/** One line for the run log: parameters and the peak by part. */
export function describeMemory(estimate: MemoryEstimate): string {
  return `model: ${(estimate.parameters / 1e6).toFixed(2)} M parameters; memory at peak ≈ ${gib(estimate.totalBytes)} (trainer weights + AdamW + gradients ${gib(estimate.trainerBytes)}, engine ${gib(estimate.engineBytes)}, logits of a trainer pass ${gib(estimate.logitsBytes)})`;
}

/**
 * Refuses, before anything is allocated, a run whose estimate exceeds this machine's memory
 * (`CONFIG_INVALID`, with the estimate by part and what shrinks it).
 */
export function assertRunFits(estimate: MemoryEstimate, available = totalmem()): void {
  if (estimate.totalBytes <= available) return;
  throw new MoerlError(
    'CONFIG_INVALID',
    `This run needs about ${gib(estimate.totalBytes)} and the machine has ${gib(available)}: ${describeMemory(estimate)}. Fewer prompts or samples a step, or a train.microBatchSize, shrink the logits; a smaller model the rest.`,
    { details: { field: 'model', estimate, available } },
  );
}
