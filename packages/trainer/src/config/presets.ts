import type { RunConfigInput } from './run-config-schema.js';

/**
 * Named starting points. `demo` is sized to run free routing and R3 over two seeds in minutes on two CPU
 * cores; `r3-study` is the full study's setting (`moerl study stability --preset r3-study`); the others are
 * the usual algorithm × replay combinations, merged over either.
 */
/**
 * What the demo and the study share: the task, the model's trunk, the warm start, FP8 rollout with bf16
 * activations at temperature 1, and the evaluation.
 */
const R3_IN_MINIATURE = {
  // Reverse up to 8 letters: 19 million problems, so held-out accuracy measures whether the policy
  // learned to reverse, not which problems the short warm start memorised.
  task: { name: 'reverse-8' },
  model: { hiddenSize: 64, numLayers: 4, numAttentionHeads: 4, numKeyValueHeads: 2 },
  warmStart: { steps: 120 },
  // FP8 rollout as serving engines run it (128×128-block e4m3 weights, router gate, embeddings and
  // norms in bf16, bf16 activations) against the fp32 trainer: the mismatch real RL stacks have.
  // Temperature 1 (as verl and OpenRLHF sample) keeps groups diverse enough for GRPO to learn from.
  rollout: { groupSize: 8, temperature: 1, precision: 'fp8', activations: 'bf16' },
  eval: { every: 10, size: 256 },
  checkpoint: { every: 0 },
} as const satisfies RunConfigInput;

export const PRESETS: Readonly<Record<string, RunConfigInput>> = {
  demo: {
    ...R3_IN_MINIATURE,
    name: 'demo',
    model: { ...R3_IN_MINIATURE.model, numExperts: 16, topK: 2 },
    // 32 prompts a step steady the gradient; with temperature 1 that raised the held-out gain more than a
    // higher learning rate did.
    rollout: { ...R3_IN_MINIATURE.rollout, promptsPerStep: 32 },
    // 160 warm-start steps (5 120 examples, 0.03 % of the problems): RL from a competent start gained more,
    // and more evenly over seeds, than from 120 (trials in docs/r3-in-miniature.md).
    warmStart: { steps: 160 },
    // DAPO's dynamic sampling: groups whose samples all scored alike carry no advantage, so they are left
    // out of the update; the remaining ones weigh more and training gets cheaper, which pays for 60 steps.
    algorithm: { dropUniformGroups: true },
    train: { steps: 60, learningRate: 5e-4, miniBatches: 2 },
  },
  'r3-study': {
    ...R3_IN_MINIATURE,
    name: 'r3-study',
    // Routing closer to the paper's regime (Qwen3-30B-A3B: top-8 of 128): many experts, top-k > 2.
    model: { ...R3_IN_MINIATURE.model, numExperts: 64, topK: 8 },
    rollout: { ...R3_IN_MINIATURE.rollout, promptsPerStep: 16 },
    // Several optimizer steps per rollout batch at a learning rate where stability is an issue.
    train: { steps: 40, learningRate: 1e-3, miniBatches: 4 },
  },
  grpo: { name: 'grpo', replay: 'free', algorithm: { objective: 'grpo' } },
  'grpo-r3': { name: 'grpo-r3', replay: 'R3', algorithm: { objective: 'grpo' } },
  gspo: { name: 'gspo', replay: 'free', algorithm: { objective: 'gspo' } },
  'gspo-r3': { name: 'gspo-r3', replay: 'R3', algorithm: { objective: 'gspo' } },
};

export function listPresets(): string[] {
  return Object.keys(PRESETS);
}
