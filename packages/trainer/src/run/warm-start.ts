import {
  createRandom,
  crossEntropyObjective,
  type ModelConfig,
  type NamedTensors,
  type Objective,
  type PolicyTrainer,
  type SeededRandom,
} from '@moerl/core';
import type { RunConfig } from '../config/run-config-schema.js';
import { sampleTrainingExamples } from '../tasks/prompt-sampler.js';
import type { Task, TaskExample } from '../tasks/task.js';
import type { ResolvedRunBackends } from './backends.js';
import { initialWeights, sharedTrainerOptions } from './model-setup.js';
import type { RunEvents } from './run-events.js';

export interface WarmStartProgress {
  readonly step: number;
  readonly steps: number;
  readonly loss: number;
}

/** Trains on reference answers so that RL starts with some reward to work with. */
export async function warmStart(
  trainer: PolicyTrainer,
  task: Task,
  options: {
    readonly steps: number;
    readonly batchSize: number;
    readonly random: SeededRandom;
    readonly heldOut: ReadonlySet<string>;
    readonly onProgress?: (progress: WarmStartProgress) => void;
    readonly shouldStop?: () => boolean;
  },
): Promise<number> {
  const plain = crossEntropyObjective();
  let loss = Number.NaN;
  for (let step = 1; step <= options.steps && options.shouldStop?.() !== true; step++) {
    const examples = sampleTrainingExamples(task, options.batchSize, options.random, options.heldOut);
    const targets = examples.map((example) => supervisedTarget(task, example));
    const batch = {
      sequences: examples.map((example, index) => ({
        promptIds: Int32Array.from(task.promptIds(example)),
        responseIds: Int32Array.from(targets[index]!.ids),
      })),
    };
    const objective = targets.every((target) => target.mask === undefined)
      ? plain
      : maskedCrossEntropy(targets.flatMap((target) => target.mask ?? target.ids.map(() => 1)));
    const result = await trainer.trainStep(batch, objective, { routing: 'free' });
    loss = result.loss;
    options.onProgress?.({ step, steps: options.steps, loss });
  }
  return loss;
}

/**
 * What the warm start imitates on `example`: the single-turn answer, or for a task whose environment
 * demonstrates, the whole conversation with a mask of 1 on the model's turns (each ended by `<eos>`) and 0 on
 * the observations between them.
 */
export function supervisedTarget(task: Task, example: TaskExample): { ids: number[]; mask?: number[] } {
  const demonstration = task.environment?.demonstrate?.(example);
  if (demonstration === undefined) return { ids: task.answerIds(example) };
  const ids: number[] = [];
  const mask: number[] = [];
  demonstration.turns.forEach((turn, index) => {
    const said = [...task.tokenizer.encode(turn), task.tokenizer.eosId];
    ids.push(...said);
    mask.push(...said.map(() => 1));
    const observation = demonstration.observations[index];
    if (index < demonstration.turns.length - 1 && observation !== undefined) {
      const heard = task.tokenizer.encode(observation);
      ids.push(...heard);
      mask.push(...heard.map(() => 0));
    }
  });
  return { ids, mask };
}

/** Mean negative logprob over the tokens where `mask` is 1 (the model's own turns of a demonstration). */
export function maskedCrossEntropy(mask: readonly number[]): Objective {
  const count = Math.max(
    1,
    mask.reduce((total, bit) => total + bit, 0),
  );
  return {
    name: 'cross-entropy',
    evaluate({ logprobs }) {
      let sum = 0;
      const gradient = new Float32Array(logprobs.length);
      for (let t = 0; t < logprobs.length; t++) {
        if (mask[t] !== 1) continue;
        sum += logprobs[t]!;
        gradient[t] = -1 / count;
      }
      return { loss: -sum / count, gradient, metrics: { tokens: count } };
    },
  };
}

/**
 * The problems the configured warm start trains on, regenerated from the same random stream: how many
 * distinct ones it saw, and the first `limit` of them (to measure accuracy on problems the policy saw).
 */
export function warmStartProblems(
  config: RunConfig,
  task: Task,
  heldOut: ReadonlySet<string>,
  limit: number,
): { readonly distinct: number; readonly examples: TaskExample[] } {
  const random = createRandom(config.seed).fork('warm-start');
  const seen = new Set<string>();
  const examples: TaskExample[] = [];
  for (let step = 1; step <= config.warmStart.steps; step++) {
    for (const example of sampleTrainingExamples(task, config.warmStart.batchSize, random, heldOut)) {
      if (seen.has(example.prompt)) continue;
      seen.add(example.prompt);
      if (examples.length < limit) examples.push(example);
    }
  }
  return { distinct: seen.size, examples };
}

/**
 * Warm starts already computed in this process. Runs of a comparison share seed, task, model and warm
 * start settings, so they would compute the same weights; the supervised phase runs once.
 */
const warmStartCache = new Map<string, { readonly weights: NamedTensors; readonly loss: number }>();

function warmStartKey(config: RunConfig): string {
  return JSON.stringify([
    config.seed,
    config.task,
    config.model,
    config.warmStart,
    config.train.routerAuxLossCoefficient,
    config.train.maxGradNorm,
    config.train.weightDecay,
    config.backends.trainer,
    config.plugins,
  ]);
}

/** The weights RL starts from: the initial model after the configured warm start (cached per process). */
export async function warmStartedWeights(options: {
  readonly config: RunConfig;
  readonly modelConfig: ModelConfig;
  readonly task: Task;
  readonly backends: ResolvedRunBackends;
  readonly heldOut: ReadonlySet<string>;
  readonly events?: RunEvents | undefined;
}): Promise<NamedTensors> {
  const { config, modelConfig, task, events } = options;
  const weights = await initialWeights(config, modelConfig);
  if (config.warmStart.steps === 0) return weights;
  const key = warmStartKey(config);
  const cached = warmStartCache.get(key);
  if (cached !== undefined) {
    events?.log?.(
      `warm start: reused from an earlier run with the same task, model, seed and settings (cross-entropy ${cached.loss.toFixed(3)})`,
    );
    return cached.weights;
  }
  // Its own constant learning rate: the RL schedule (warmup, cosine over RL updates) is not its.
  const supervised = await options.backends.createTrainer({
    config: modelConfig,
    seed: config.seed,
    maxGradNorm: config.train.maxGradNorm,
    backendOptions: sharedTrainerOptions(config),
    weights,
    learningRate: config.warmStart.learningRate,
  });
  let result: { weights: NamedTensors; loss: number };
  try {
    const loss = await warmStart(supervised, task, {
      steps: config.warmStart.steps,
      batchSize: config.warmStart.batchSize,
      random: createRandom(config.seed).fork('warm-start'),
      heldOut: options.heldOut,
      ...(events?.warmStart === undefined ? {} : { onProgress: events.warmStart }),
    });
    result = { weights: await supervised.exportWeights(), loss };
  } finally {
    await supervised.dispose();
  }
  warmStartCache.set(key, result);
  events?.log?.(`warm start: ${config.warmStart.steps} steps, final cross-entropy ${result.loss.toFixed(3)}`);
  return result.weights;
}
