/**
 * Multi-turn rollouts with the engine's prefix cache against without, in one run: a 4-turn conversation per
 * sample (16 prompts × 8 samples, 6-token observations, demo-sized model). Prints the prompt tokens each
 * engine had to compute, the tokens the ideal cache computes (each group's prompt once, then per turn only
 * the observation and the one token fed again for its logits), the share of the ideal saving reached, the
 * wall time ratio (median of interleaved rounds), and the prefill time ratio against the token ratio (the
 * engine's `prefillSeconds`). Asserts nothing.
 */
import { createOnnxRolloutEngine } from '@moerl/backend-onnx';
import { createRandom, type RolloutEngine } from '@moerl/core';
import { createRandomWeights } from '@moerl/testkit';
import { collectConversations } from '../src/run/conversation-rollouts.js';
import {
  config,
  environment,
  examples,
  observation,
  sampling,
  task,
  turns,
} from './fixed-reply-conversations.js';

const quick = process.argv.includes('--quick');
const rounds = quick ? 2 : 5;
const weights = createRandomWeights(config, 1);

async function run(engine: RolloutEngine) {
  const before = engine.stats();
  const start = performance.now();
  const batch = await collectConversations(engine, task, environment, examples, {
    groupSize: 8,
    sampling,
    random: createRandom(9),
    idPrefix: 'b',
  });
  const seconds = (performance.now() - start) / 1000;
  const after = engine.stats();
  const computed =
    after.promptTokens - before.promptTokens - (after.cachedPromptTokens - before.cachedPromptTokens);
  const prefillSeconds = (after.prefillSeconds ?? Number.NaN) - (before.prefillSeconds ?? Number.NaN);
  return { seconds, prefillSeconds, computed, fed: after.promptTokens - before.promptTokens, batch };
}

const engines = {
  cache: await createOnnxRolloutEngine({ config, weights, precision: 'fp32', prefixCache: true }),
  none: await createOnnxRolloutEngine({ config, weights, precision: 'fp32', prefixCache: false }),
};
const seconds: Record<keyof typeof engines, number[]> = { cache: [], none: [] };
const prefillSeconds: Record<keyof typeof engines, number[]> = { cache: [], none: [] };
const counts = { cache: 0, none: 0, fed: 0, ideal: 0 };
for (let round = 0; round < rounds; round++) {
  for (const name of ['cache', 'none'] as const) {
    // A fresh cache each round: what one RL step sees after a weight update.
    await engines[name].updateWeights(weights, round + 1);
    const result = await run(engines[name]);
    seconds[name].push(result.seconds);
    prefillSeconds[name].push(result.prefillSeconds);
    counts[name] = result.computed;
    counts.fed = result.fed;
    // Ideal: each group's prompt once, then per later turn the observation plus the token fed again.
    const prompts = examples.reduce((sum, example) => sum + task.promptIds(example).length, 0);
    counts.ideal = prompts + result.batch.trajectories.length * (turns - 1) * (observation.length + 1);
  }
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const saved = counts.none - counts.cache;
const idealSaved = counts.none - counts.ideal;
console.log(
  `multi-turn rollouts: ${examples.length} prompts × 8 samples, ${turns} turns, ${observation.length}-token observations`,
);
console.log(`prompt tokens sent to the engine: ${counts.fed}`);
console.log(`computed without cache: ${counts.none}, with cache: ${counts.cache}, ideal: ${counts.ideal}`);
console.log(`share of the ideal saving reached: ${(saved / idealSaved).toFixed(3)}`);
console.log(
  `wall time without / with cache: ${(median(seconds.none) / median(seconds.cache)).toFixed(2)}× (median of ${rounds} rounds: ${median(seconds.none).toFixed(3)} s / ${median(seconds.cache).toFixed(3)} s)`,
);
const prefillRatio = median(prefillSeconds.none) / median(prefillSeconds.cache);
const idealRatio = counts.none / counts.ideal;
console.log(
  `prefill time without / with cache: ${prefillRatio.toFixed(2)}× (median: ${median(prefillSeconds.none).toFixed(3)} s / ${median(prefillSeconds.cache).toFixed(3)} s), ideal ${idealRatio.toFixed(2)}× (tokens), reached ${(prefillRatio / idealRatio).toFixed(2)} of it`,
);
console.log(
  `share of the rollout in prefill: ${(median(prefillSeconds.none) / median(seconds.none)).toFixed(2)} without cache, ${(median(prefillSeconds.cache) / median(seconds.cache)).toFixed(2)} with`,
);
for (const engine of Object.values(engines)) await engine.dispose();
