import { registerObjective } from '@moerl/algos';

/** How many times the trainer evaluated the plugin's objective (what the plugin test checks). */
export const pluginCalls = { evaluate: 0 };

// What an outside algorithm package does on import: register an objective by name.
registerObjective(
  'test-plugin-reinforce',
  ({ batch }) => ({
    name: 'test-plugin-reinforce',
    evaluate({ logprobs }) {
      pluginCalls.evaluate++;
      const count = logprobs.length;
      const gradient = new Float32Array(count);
      let loss = 0;
      for (let index = 0; index < count; index++) {
        loss -= (batch.advantages[index]! * logprobs[index]!) / count;
        gradient[index] = -batch.advantages[index]! / count;
      }
      return { loss, gradient, metrics: { pluginTokens: count } };
    },
  }),
  { replace: true },
);
