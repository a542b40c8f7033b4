import type { ModelConfig, NamedTensors, TrainingBatch } from '@moerl/core';
import { tinyMoeConfig } from '../fixtures/tiny-config.js';
import { createReferenceModel, type ReferenceModel } from '../reference/reference-model.js';
import { createRandomWeights } from '../weights/random-weights.js';

/** The model every conformance case runs: the tiny MoE config with two seeded weight sets. */
export interface ConformanceFixture {
  readonly config: ModelConfig;
  readonly weights: NamedTensors;
  /** A second weight set, for weight updates and foreign routing. */
  readonly otherWeights: NamedTensors;
  readonly reference: ReferenceModel;
  readonly otherReference: ReferenceModel;
  /** Two ragged sequences (different prompt and response lengths). */
  readonly batch: TrainingBatch;
}

let cached: ConformanceFixture | undefined;

export function conformanceFixture(): ConformanceFixture {
  if (cached !== undefined) return cached;
  const config = tinyMoeConfig;
  const weights = createRandomWeights(config, 1234);
  const otherWeights = createRandomWeights(config, 4321);
  cached = {
    config,
    weights,
    otherWeights,
    reference: createReferenceModel(config, weights),
    otherReference: createReferenceModel(config, otherWeights),
    batch: {
      sequences: [
        { promptIds: Int32Array.of(1, 7, 3), responseIds: Int32Array.of(19, 30, 2, 2) },
        { promptIds: Int32Array.of(11, 25, 0, 31, 8), responseIds: Int32Array.of(14, 5) },
      ],
    },
  };
  return cached;
}
