import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOnnxRolloutEngine } from '@moerl/backend-onnx';
import type { CreateEngineOptions, RolloutEngine } from '@moerl/core';
import { describeRolloutEngineConformance } from '@moerl/testkit/vitest';
import {
  checkpointWeightSync,
  createHttpRolloutEngine,
  createSglangServer,
  loadCheckpointWeights,
} from './index.js';

/** The adapter in front of a real `moerl serve`-style server on loopback, torn down with the adapter. */
async function adapterWithServer(
  options: CreateEngineOptions,
  compactRouting: boolean,
  protocol: 'sglang' | 'vllm' = 'sglang',
): Promise<RolloutEngine> {
  const engine = await createOnnxRolloutEngine({
    config: options.config,
    weights: options.weights,
    weightVersion: options.weightVersion ?? 0,
  });
  const server = await createSglangServer({ engine, loadWeights: loadCheckpointWeights });
  const directory = await mkdtemp(join(tmpdir(), 'moerl-conformance-'));
  const adapter = createHttpRolloutEngine({
    servers: [server.url],
    config: options.config,
    compactRouting,
    protocol,
    weightSync: checkpointWeightSync({ directory, config: options.config }),
  });
  return {
    ...adapter,
    dispose: async () => {
      await adapter.dispose();
      await server.close();
      await engine.dispose();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

const capabilities = {
  recordRouting: true,
  prefixCache: true,
  batchedGeneration: true,
  precisions: ['fp32', 'bf16', 'fp16'],
} as const;

describeRolloutEngineConformance({
  name: 'http adapter + SGLang-protocol server (int32 routing)',
  create: (options) => adapterWithServer(options, false),
  capabilities,
  tolerance: 1e-4,
});

describeRolloutEngineConformance({
  name: 'http adapter + SGLang-protocol server (compact routing)',
  create: (options) => adapterWithServer(options, true),
  capabilities,
  tolerance: 1e-4,
});

describeRolloutEngineConformance({
  name: 'http adapter + vLLM-protocol server (/v1/completions, .npy routing)',
  create: (options) => adapterWithServer(options, false, 'vllm'),
  capabilities,
  tolerance: 1e-4,
});
