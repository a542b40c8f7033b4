import type { RunConfigInput } from './run-config-schema.js';

/**
 * Named starting points. `demo` is sized to run free routing and R3 over two seeds in minutes on two CPU
 * cores; `r3-study` is the full study's setting (`moerl study stability --preset r3-study`); the others are
 * the usual algorithm × replay combinations, merged over either.
 */
export const PRESETS: Readonly<Record<string, RunConfigInput>> = {
  demo: {
    name: 'demo',
    // Reverse up to 8 letters: 19 million problems, so held-out accuracy measures whether the policy
    // learned to reverse, not which problems the short warm start memorised.
    task: { name: 'reverse-8' },
    model: {
      hiddenSize: 64,
      numLayers: 4,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      numExperts: 16,
      topK: 2,
    },
    warmStart: { steps: 120 },
    // FP8 rollout as serving engines run it (128×128-block e4m3 weights, router gate, embeddings and
    // norms in bf16, bf16 activations) against the fp32 trainer: the mismatch real RL stacks have.
    // Temperature 1 (as verl and OpenRLHF sample) keeps groups diverse enough for GRPO to learn from; 32
    // prompts a step steady the gradient. Both raised the held-out gain more than a higher learning rate did.
    rollout: { promptsPerStep: 32, groupSize: 8, temperature: 1, precision: 'fp8', activations: 'bf16' },
    train: { steps: 40, learningRate: 5e-4, miniBatches: 2 },
    eval: { every: 10, size: 256 },
    checkpoint: { every: 0 },
  },
  'r3-study': {
    name: 'r3-study',
    task: { name: 'reverse-8' },
    // Routing closer to the paper's regime (Qwen3-30B-A3B: top-8 of 128): many experts, top-k > 2.
    model: {
      hiddenSize: 64,
      numLayers: 4,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      numExperts: 64,
      topK: 8,
    },
    warmStart: { steps: 120 },
    rollout: { promptsPerStep: 16, groupSize: 8, temperature: 1, precision: 'fp8', activations: 'bf16' },
    // Several optimizer steps per rollout batch at a learning rate where stability is an issue.
    train: { steps: 40, learningRate: 1e-3, miniBatches: 4 },
    eval: { every: 10, size: 256 },
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
