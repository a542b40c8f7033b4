import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  assertFiniteTensors,
  float32Tensor,
  type NamedTensors,
  type PolicyTrainer,
  readSafetensorsFile,
} from '@moerl/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyRun } from '../__fixtures__/tiny-run.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { checkUpdate } from './checked-update.js';
import { readLatestCheckpoint, runPaths } from './run-directory.js';
import { trainRun } from './train-run.js';

let root = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'moerl-diverge-'));
});
afterAll(async () => rm(root, { recursive: true, force: true }));

/** A trainer that holds one weight tensor: only what checkUpdate touches. */
function holder(initial: NamedTensors) {
  let weights = initial;
  return {
    trainer: {
      exportWeights: async () => weights,
      loadWeights: async (next: NamedTensors) => {
        weights = next;
      },
    } as unknown as PolicyTrainer,
    set: (next: NamedTensors) => {
      weights = next;
    },
    get: () => weights,
  };
}

describe('checkUpdate', () => {
  it('keeps a finite update and undoes one that left a weight non-finite', async () => {
    const before: NamedTensors = new Map([['w', float32Tensor([2], Float32Array.of(1, 2))]]);
    const state = holder(before);
    const finite: NamedTensors = new Map([['w', float32Tensor([2], Float32Array.of(1.5, 2))]]);
    state.set(finite);
    expect(await checkUpdate(state.trainer, before)).toEqual({ weights: finite });

    state.set(new Map([['w', float32Tensor([2], Float32Array.of(1.5, Number.POSITIVE_INFINITY))]]));
    const checked = await checkUpdate(state.trainer, before);
    expect(checked.weights).toBe(before);
    expect(checked.rolledBack).toBe(
      'the updated weights: w must be finite, found Infinity at index 1 (of 2, shape [2])',
    );
    expect(state.get()).toBe(before);
  });
});

describe('a diverging run', () => {
  it('skips every step whose update blows up, says so in the metrics and never checkpoints broken weights', async () => {
    // A learning rate that sends the LM head to ±Infinity on the first update.
    const config = await resolveRunConfig({
      config: {
        ...tinyRun,
        plugins: [new URL('../__fixtures__/likelihood-objective.ts', import.meta.url).href],
        algorithm: { objective: 'test-plugin-likelihood' },
        train: { steps: 2, miniBatches: 1, learningRate: 1e300 },
        eval: { every: 0, size: 2 },
      },
    });
    const result = await trainRun({ config, directory: join(root, 'diverged') });
    expect(result.metrics.map((row) => row.skipped)).toEqual([true, true]);
    expect(result.metrics.map((row) => row.skippedSteps)).toEqual([1, 2]);
    expect(result.allStepsSkipped).toBe(true);
    const { trainerDirectory } = await readLatestCheckpoint(runPaths(join(root, 'diverged')));
    const saved = await readSafetensorsFile(join(trainerDirectory, 'model.safetensors'));
    expect(() => assertFiniteTensors(saved.tensors)).not.toThrow();
  });
});
