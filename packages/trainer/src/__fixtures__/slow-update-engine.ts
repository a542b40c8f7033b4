import { type CreateEngineOptions, MoerlError, type RolloutEngine } from '@moerl/core';
import { createReferenceRolloutEngine } from '@moerl/testkit';

/**
 * The reference engine with weight updates that take a while: it refuses any generate call that starts
 * while an update is still running, and fails every update to version `failFrom` or later.
 */
export function createSlowUpdateEngine(
  options: CreateEngineOptions,
  failFrom = Number.POSITIVE_INFINITY,
): RolloutEngine {
  const engine = createReferenceRolloutEngine(options);
  let updating = false;
  return {
    ...engine,
    generate: async (requests, sampling) => {
      if (updating) throw new MoerlError('INVALID_ARGUMENT', 'generate started during a weight update');
      return engine.generate(requests, sampling);
    },
    updateWeights: async (weights, version) => {
      updating = true;
      await new Promise((resolve) => setTimeout(resolve, 30));
      updating = false;
      if (version >= failFrom) throw new MoerlError('IO_ERROR', `update to version ${version} failed`);
      return engine.updateWeights(weights, version);
    },
    stats: () => engine.stats(),
  };
}
