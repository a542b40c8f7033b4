import type { RunConfigInput } from './run-config-schema.js';

/**
 * Named starting points. `demo` is sized to run free routing and R3 side by side in minutes on two CPU
 * cores; the others are the usual algorithm × replay combinations at a larger budget.
 */
export const PRESETS: Readonly<Record<string, RunConfigInput>> = {
  demo: {
    name: 'demo',
    task: { name: 'addition' },
    model: {
      hiddenSize: 64,
      numLayers: 4,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      numExperts: 16,
      topK: 2,
    },
    warmStart: { steps: 400 },
    rollout: { promptsPerStep: 8, groupSize: 8, temperature: 0.7, precision: 'bf16' },
    train: { steps: 40, learningRate: 3e-4 },
    eval: { every: 10, size: 96 },
    checkpoint: { every: 0 },
  },
  grpo: { name: 'grpo', replay: 'free', algorithm: { objective: 'grpo' } },
  'grpo-r3': { name: 'grpo-r3', replay: 'R3', algorithm: { objective: 'grpo' } },
  gspo: { name: 'gspo', replay: 'free', algorithm: { objective: 'gspo' } },
  'gspo-r3': { name: 'gspo-r3', replay: 'R3', algorithm: { objective: 'gspo' } },
};

export function listPresets(): string[] {
  return Object.keys(PRESETS);
}
