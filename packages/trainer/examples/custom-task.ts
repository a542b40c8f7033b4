import { defineTask, registerTask, resolveRunConfig, trainRun } from '@moerl/trainer';

// A task is a seeded problem generator over a small alphabet; exact answers earn reward 1.
registerTask('count-a', () =>
  defineTask({
    name: 'count-a',
    description: 'count the letter a in a short word ("abca?" → "2")',
    alphabet: 'abc?0123456789',
    answerAlphabet: '0123456789',
    maxPromptLength: 7,
    maxAnswerLength: 1,
    generate(random) {
      const word = Array.from({ length: 2 + random.nextInt(5) }, () => 'abc'[random.nextInt(3)]).join('');
      return { prompt: `${word}?`, answer: String([...word].filter((letter) => letter === 'a').length) };
    },
  }),
);

const config = await resolveRunConfig({
  preset: 'grpo-r3',
  config: {
    task: { name: 'count-a' },
    model: { hiddenSize: 16, numLayers: 2, mlpOnlyLayers: [] },
    warmStart: { steps: 10 },
    rollout: { promptsPerStep: 2, groupSize: 4 },
    train: { steps: 2 },
    eval: { size: 8 },
  },
});
const { metrics, paths } = await trainRun({ config, directory: '.tmp/custom-task-run' });
console.log(
  `steps ${metrics.length}, last reward ${metrics.at(-1)?.rewardMean.toFixed(3)}, metrics in ${paths.metrics}`,
);
