import type { RunConfigInput } from '../config/run-config-schema.js';

/** A run small enough for the pure-TypeScript reference backends (seconds per run). */
export const tinyRun: RunConfigInput = {
  seed: 3,
  task: { name: 'reverse' },
  model: {
    hiddenSize: 16,
    numLayers: 2,
    numAttentionHeads: 2,
    numKeyValueHeads: 1,
    numExperts: 4,
    topK: 2,
    moeIntermediateSize: 8,
    intermediateSize: 16,
    mlpOnlyLayers: [],
  },
  warmStart: { steps: 3, batchSize: 8 },
  rollout: { promptsPerStep: 2, groupSize: 4, precision: 'bf16' },
  train: { steps: 4, miniBatches: 2 },
  eval: { every: 2, size: 6 },
  checkpoint: { every: 2 },
  backends: { trainer: 'reference', engine: 'reference' },
};
