import { registerObjective } from '@moerl/algos';

// An objective whose gradient never vanishes (maximise every sampled token's likelihood, whatever the
// reward), so a huge learning rate surely moves, and breaks, the weights.
registerObjective(
  'test-plugin-likelihood',
  () => ({
    name: 'test-plugin-likelihood',
    evaluate({ logprobs }) {
      const count = logprobs.length;
      let loss = 0;
      for (let index = 0; index < count; index++) loss -= logprobs[index]! / count;
      return { loss, gradient: new Float32Array(count).fill(-1 / Math.max(count, 1)), metrics: {} };
    },
  }),
  { replace: true },
);
