import { createReferencePolicyTrainer } from '@moerl/testkit';
import { describeReplayParity, describeRolloutEngineConformance } from '@moerl/testkit/vitest';
import { createOnnxRolloutEngine } from './index.js';

describeRolloutEngineConformance({
  name: 'onnx (prefix cache on)',
  create: (options) => createOnnxRolloutEngine(options),
  capabilities: {
    recordRouting: true,
    prefixCache: true,
    batchedGeneration: true,
    precisions: ['fp32', 'bf16', 'fp16'],
    seedFork: true,
  },
  tolerance: 1e-4,
});

describeRolloutEngineConformance({
  name: 'onnx (prefix cache off)',
  create: (options) => createOnnxRolloutEngine({ ...options, prefixCache: false }),
  capabilities: {
    recordRouting: true,
    prefixCache: false,
    batchedGeneration: true,
    precisions: ['fp32', 'bf16', 'fp16'],
    seedFork: true,
  },
  tolerance: 1e-4,
});

// The fallback runtime (what a plain `npm install` without onnxruntime-node runs on) passes the same suite.
describeRolloutEngineConformance({
  name: 'onnx on onnxruntime-web (prefix cache on)',
  create: (options) => createOnnxRolloutEngine({ ...options, runtime: 'web' }),
  capabilities: {
    recordRouting: true,
    prefixCache: true,
    batchedGeneration: true,
    precisions: ['fp32', 'bf16', 'fp16'],
    seedFork: true,
  },
  tolerance: 1e-4,
});

// The onnx engine's routing replayed in testkit's reference trainer (the oracle for backend-tfjs).
describeReplayParity({
  name: 'onnx engine + reference trainer',
  createEngine: (options) => createOnnxRolloutEngine(options),
  createTrainer: async (options) => createReferencePolicyTrainer(options),
  capabilities: { engineRecordsRouting: true, trainerReplaysRouting: true, trainerRecordsRouting: true },
  tolerance: 1e-4,
});
