import { createModelConfig } from '@moerl/core';
import { demoShapedMoeConfig } from '@moerl/testkit';
import { describe, expect, it } from 'vitest';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { createTask } from '../tasks/task-registry.js';
import { assertRunFits, estimateRunMemory } from './memory-estimate.js';
import { maxNewTokensOf } from './model-setup.js';

describe('estimateRunMemory', () => {
  it('counts the parameters of Qwen3-MoE by hand and prices the trainer, engine and logits', async () => {
    const config = await resolveRunConfig({ preset: 'demo' });
    const task = createTask(config.task.name);
    const model = createModelConfig({
      vocabSize: 20,
      hiddenSize: 8,
      numLayers: 2,
      numAttentionHeads: 2,
      numKeyValueHeads: 1,
      headDim: 4,
      numExperts: 3,
      topK: 2,
      moeIntermediateSize: 5,
      intermediateSize: 6,
      mlpOnlyLayers: [0],
      maxPositionEmbeddings: 64,
    });
    // Embeddings and LM head; per layer: q, k, v, o, two norms, q/k norms; layer 0 a dense MLP, layer 1
    // a router and three experts; the final norm.
    const attention = 8 * 8 + 8 * 4 + 8 * 4 + 8 * 8 + 2 * 8 + 2 * 4;
    const dense = 3 * 8 * 6;
    const experts = 3 * 8 + 3 * 3 * 8 * 5;
    const parameters = 2 * 20 * 8 + 2 * attention + dense + experts + 8;
    const estimate = estimateRunMemory(config, model, task);
    expect(estimate.parameters).toBe(parameters);
    expect(estimate.trainerBytes).toBe(16 * parameters);
    // The demo's engine runs FP8: the weights and their quantised copy.
    expect(estimate.engineBytes).toBe(8 * parameters);
    const positions = task.maxPromptTokens + maxNewTokensOf(config, task);
    expect(estimate.logitsBytes).toBe(3 * 4 * 32 * 8 * positions * 20);
  });

  it('refuses a run that does not fit, naming what it needs and what shrinks it', async () => {
    const config = await resolveRunConfig({ preset: 'demo' });
    const task = createTask(config.task.name);
    // The demo's model with Qwen3's vocabulary: the logits of a step's batch alone take gigabytes.
    const model = demoShapedMoeConfig(151_669, 64);
    const estimate = estimateRunMemory(config, model, task);
    expect(estimate.logitsBytes).toBeGreaterThan(2 ** 32);
    expect(() => assertRunFits(estimate, estimate.totalBytes)).not.toThrow();
    expect(() => assertRunFits(estimate, estimate.totalBytes - 1)).toThrow(
      /needs about .* GiB .* Fewer prompts .* train\.microBatchSize/,
    );
  });

  it('prices the logits of one micro-batch when train.microBatchSize is set', async () => {
    const config = await resolveRunConfig({ preset: 'demo', overrides: ['train.microBatchSize=4'] });
    const task = createTask(config.task.name);
    const model = demoShapedMoeConfig(151_669, 64);
    const positions = task.maxPromptTokens + maxNewTokensOf(config, task);
    expect(estimateRunMemory(config, model, task).logitsBytes).toBe(3 * 4 * 4 * positions * 151_669);
  });
});
