/*
 * One RL step, in the two halves a pipeline schedules: sampling a batch on the engine
 * (`collectStepRollouts`) and training on it (`trainOnRollouts`: score → trainer logprobs free and replayed
 * → objective → updates → checked weights). Who calls them when, and when the engine takes new weights, is
 * `RolloutPipeline`'s business.
 */
import { createObjective, filterUniformGroups } from '@moerl/algos';
import {
  createRandom,
  type LogprobResult,
  MoerlError,
  type PolicyTrainer,
  type RolloutEngine,
  type SamplingParams,
  type TrainingBatch,
  type TrainStepResult,
} from '@moerl/core';
import type { RunConfig } from '../config/run-config-schema.js';
import { updateMetrics } from '../metrics/update-metrics.js';
import { sampleTrainingExamples } from '../tasks/prompt-sampler.js';
import type { Task } from '../tasks/task.js';
import { tokenAdvantages } from './advantages.js';
import { checkUpdate } from './checked-update.js';
import { collectConversations } from './conversation-rollouts.js';
import { miniBatchRanges } from './mini-batches.js';
import { mismatchMetrics } from './mismatch-metrics.js';
import { collectRollouts, type RolloutBatch, trainingBatchOf } from './rollout-batch.js';
import type { RunEvents } from './run-events.js';

const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);
const mean = (values: readonly number[]) => (values.length === 0 ? Number.NaN : sum(values) / values.length);

/** Same batch, with the given routing record attached to each sequence (for replay). */
function withRouting(batch: TrainingBatch, routing: LogprobResult['routing']): TrainingBatch {
  return {
    sequences: batch.sequences.map((sequence, index) => {
      const record = routing?.[index];
      return record === undefined ? sequence : { ...sequence, routing: record };
    }),
  };
}

/** What every step of a run reads. */
export interface StepContext {
  readonly config: RunConfig;
  readonly task: Task;
  readonly trainer: PolicyTrainer;
  readonly engine: RolloutEngine;
  readonly sampling: SamplingParams;
  readonly heldOut: ReadonlySet<string>;
  readonly logprobTemperature: number;
  /** The frozen warm-started policy, when the objective has a KL term against it. */
  readonly reference: PolicyTrainer | undefined;
}

/** One step's rollouts, sampled by the engine at whatever weight version it holds when the call starts. */
export interface CollectedRollouts {
  readonly rollouts: RolloutBatch;
  readonly rolloutSeconds: number;
  readonly cachedTokens: number;
}

export async function collectStepRollouts(context: StepContext, step: number): Promise<CollectedRollouts> {
  const { config, task, engine } = context;
  const random = createRandom(config.seed).fork(`step:${step}`);
  const examples = sampleTrainingExamples(
    task,
    config.rollout.promptsPerStep,
    random.fork('prompts'),
    context.heldOut,
  );
  const cachedBefore = engine.stats().cachedPromptTokens;
  const rolloutStart = performance.now();
  const common = {
    groupSize: config.rollout.groupSize,
    sampling: { ...context.sampling, seed: step },
    random: random.fork('sampling'),
    idPrefix: `s${step}`,
  };
  // A task with an environment samples conversations, turn by turn; any other, one response per sample.
  const rollouts: RolloutBatch =
    task.environment === undefined
      ? await collectRollouts(engine, task, examples, { ...common, formatReward: config.task.formatReward })
      : await collectConversations(engine, task, task.environment, examples, common);
  const rolloutSeconds = (performance.now() - rolloutStart) / 1000;
  return { rollouts, rolloutSeconds, cachedTokens: engine.stats().cachedPromptTokens - cachedBefore };
}

/**
 * Trains on one step's rollouts. The engine keeps its weights: the caller hands it `weights` once no batch
 * is being sampled (with rollout.async the next step's batch may still be running).
 */
export async function trainOnRollouts(
  context: StepContext,
  step: number,
  collected: CollectedRollouts,
  events: RunEvents | undefined,
) {
  const { config, trainer, engine } = context;
  const { rollouts, rolloutSeconds, cachedTokens } = collected;
  events?.phase?.('train', step, config.train.steps);
  const trainStart = performance.now();
  const engineBatch = trainingBatchOf(rollouts.trajectories, 'engine');
  const hasEngineRouting = rollouts.trajectories.every((trajectory) => trajectory.routing !== null);
  if (config.replay === 'R3' && !hasEngineRouting) {
    throw new MoerlError(
      'UNSUPPORTED',
      `replay R3 needs an engine that records routing; ${engine.backendName} returned none`,
      {
        details: { field: 'replay' },
      },
    );
  }
  const temperature = context.logprobTemperature;
  const free = await trainer.logprobs(engineBatch, { routing: 'free', temperature });
  const replay =
    hasEngineRouting && trainer.capabilities.routingReplay
      ? await trainer.logprobs(engineBatch, { routing: 'replay', temperature })
      : undefined;
  const mismatch = mismatchMetrics(
    rollouts.trajectories,
    rollouts.engineLogprobs,
    free,
    replay,
    rollouts.lossMask,
  );

  // Old logprobs come from the same routing the updates will use.
  const oldLogprobs = config.replay === 'R3' ? replay!.logprobs : free.logprobs;
  // R2 replays the trainer's own routing only, never the engine's.
  const updateBatch =
    config.replay === 'R2'
      ? withRouting(trainingBatchOf(rollouts.trajectories, 'none'), free.routing)
      : engineBatch;
  const routingMode = config.replay === 'free' ? 'free' : 'replay';
  const advantages = tokenAdvantages(config.algorithm.advantage, rollouts);

  const keep = config.algorithm.dropUniformGroups
    ? filterUniformGroups(rollouts.groupIds, rollouts.rewards).keepResponse
    : undefined;
  const kept = rollouts.trajectories.flatMap((_, index) =>
    keep === undefined || keep[index] === 1 ? [index] : [],
  );

  const losses: number[] = [];
  const gradNorms: number[] = [];
  const clipFractions: number[] = [];
  const auxLosses: number[] = [];
  const loadImbalances: number[] = [];
  const results: TrainStepResult[] = [];
  let skipped = 0;
  const a = config.algorithm;
  // Reference logprobs for the KL term, computed with the routing the old logprobs used.
  const referenceLogprobs =
    context.reference === undefined
      ? undefined
      : (
          await context.reference.logprobs(
            config.replay === 'R3' ? engineBatch : trainingBatchOf(rollouts.trajectories, 'none'),
            {
              routing: config.replay === 'R3' ? 'replay' : 'free',
              temperature,
            },
          )
        ).logprobs;
  // Mini-batches and their objectives depend on the step only, not on the epoch.
  const parts = miniBatchRanges(kept.length, config.train.miniBatches)
    .map(([start, end]) => {
      const indices = kept.slice(start, end);
      const perToken: Record<string, Float32Array | Float64Array> = {
        oldLogprobs,
        advantages,
        engine: rollouts.engineLogprobs,
      };
      if (referenceLogprobs !== undefined) perToken.reference = referenceLogprobs;
      if (rollouts.lossMask !== undefined) perToken.mask = Float32Array.from(rollouts.lossMask);
      const sub = gatherSequences(indices, rollouts.sequenceOffsets, perToken);
      // A mini-batch of failed conversations only has no token to learn from: it makes no update.
      if (sub.values.mask !== undefined && !sub.values.mask.includes(1)) return undefined;
      const objective = createObjective(a.objective, {
        batch: {
          sequenceOffsets: sub.offsets,
          oldLogprobs: sub.values.oldLogprobs!,
          advantages: sub.values.advantages!,
          engineLogprobs: sub.values.engine!,
          ...(sub.values.reference === undefined ? {} : { refLogprobs: sub.values.reference }),
          ...(sub.values.mask === undefined ? {} : { responseMask: sub.values.mask }),
        },
        ...(a.clipRatioLow === undefined ? {} : { clipRatioLow: a.clipRatioLow }),
        ...(a.clipRatioHigh === undefined ? {} : { clipRatioHigh: a.clipRatioHigh }),
        ...(a.lossAggMode === undefined ? {} : { lossAggMode: a.lossAggMode }),
        ...(a.importanceSampling === 'none'
          ? {}
          : { importanceSampling: { mode: a.importanceSampling, threshold: a.importanceSamplingThreshold } }),
        ...(a.klCoefficient > 0 ? { kl: { coefficient: a.klCoefficient, estimator: a.klEstimator } } : {}),
      });
      const batch: TrainingBatch = { sequences: indices.map((index) => updateBatch.sequences[index]!) };
      return { batch, objective };
    })
    .filter((part) => part !== undefined);
  const before = await trainer.exportWeights();
  let updates = 0;
  for (let epoch = 0; epoch < (config.train.frozen ? 0 : config.train.epochs); epoch++) {
    for (const { batch, objective } of parts) {
      updates++;
      const result = await trainer.trainStep(batch, objective, { routing: routingMode, temperature });
      results.push(result);
      if (result.skipped) skipped++;
      else {
        losses.push(result.loss);
        gradNorms.push(result.gradNorm);
        clipFractions.push(result.metrics.clipFraction ?? Number.NaN);
        auxLosses.push(result.metrics.routerAuxLoss ?? Number.NaN);
        loadImbalances.push(result.metrics.expertLoadImbalance ?? Number.NaN);
      }
    }
  }
  const checked = await checkUpdate(trainer, before);
  if (checked.rolledBack !== undefined)
    events?.log?.(`step ${step} skipped, update undone: ${checked.rolledBack}`);
  // Skipped: the weights left the step as they entered it (every update skipped, or the update undone).
  const stepSkipped = checked.rolledBack !== undefined || (updates > 0 && skipped === updates);
  const trainSeconds = (performance.now() - trainStart) / 1000;

  const rewards = Array.from(rollouts.rewards);
  const rewardMean = mean(rewards);
  return {
    skipped: checked.rolledBack === undefined ? skipped : updates,
    stepSkipped,
    weights: checked.weights,
    metrics: {
      step,
      rewardMean,
      rewardStd: Math.sqrt(mean(rewards.map((reward) => (reward - rewardMean) ** 2))),
      accuracy: mean(rollouts.correct.map(Number)),
      responseLength: rollouts.responseTokens / rollouts.trajectories.length,
      loss: mean(losses),
      clipFraction: mean(clipFractions),
      gradNorm: mean(gradNorms),
      routerAuxLoss: mean(auxLosses),
      expertLoadImbalance: mean(loadImbalances),
      tisClipFraction: truncatedShare(
        oldLogprobs,
        rollouts.engineLogprobs,
        a.importanceSamplingThreshold,
        rollouts.lossMask,
      ),
      ...(rollouts.errors === undefined ? {} : { environmentErrors: rollouts.errors.length }),
      // The trainer holds version step − 1 (the engine gets version `step` after the update).
      routeAge: routeAge(rollouts.trajectories, step - 1),
      rolloutStaleness: Math.max(
        ...rollouts.trajectories.map(({ weightVersion }) => step - 1 - weightVersion),
      ),
      ...mismatch,
      prefixCacheHitRate:
        (rollouts.fedPromptTokens ?? rollouts.promptTokens) === 0
          ? 0
          : cachedTokens / (rollouts.fedPromptTokens ?? rollouts.promptTokens),
      ...(rollouts.turns === undefined ? {} : conversationMetrics(rollouts, cachedTokens)),
      rolloutTokensPerSecond: (rollouts.promptTokens + rollouts.responseTokens) / rolloutSeconds,
      // Tokens through the trainer: every sequence once or twice for logprobs, the kept ones per epoch.
      trainTokensPerSecond:
        ((replay === undefined ? 1 : 2) * (rollouts.promptTokens + rollouts.responseTokens) +
          config.train.epochs * keptTokens(rollouts, kept)) /
        Math.max(trainSeconds, 1e-9),
      rolloutSeconds,
      trainSeconds,
      ...updateMetrics(results),
    },
  };
}

/** Trainer weight version − routing version, the largest over the trajectories with routing (NaN: none). */
function routeAge(trajectories: RolloutBatch['trajectories'], trainerVersion: number): number {
  const ages = trajectories.flatMap(({ routing, weightVersion }) =>
    routing === null ? [] : [trainerVersion - (routing.weightVersion ?? weightVersion)],
  );
  return ages.length === 0 ? Number.NaN : Math.max(...ages);
}

/** Per-turn figures of a multi-turn batch (what its trajectories and the engine's cache counters tell). */
function conversationMetrics(rollouts: RolloutBatch, cachedTokens: number) {
  const turns = rollouts.turns!;
  const totalTurns = turns.reduce((total, count) => total + count, 0);
  let sampled = 0;
  for (const bit of rollouts.lossMask ?? []) sampled += bit;
  return {
    turnsPerEpisode: totalTurns / Math.max(turns.length, 1),
    toolCallsPerEpisode:
      (rollouts.toolCalls ?? []).reduce((total, count) => total + count, 0) / Math.max(turns.length, 1),
    tokensPerTurn: totalTurns === 0 ? Number.NaN : sampled / totalTurns,
    observationTokenShare:
      rollouts.responseTokens === 0
        ? Number.NaN
        : (rollouts.responseTokens - sampled) / rollouts.responseTokens,
    // Every prompt position the prefix cache served came with its routing row.
    routingRowsReused: cachedTokens,
  };
}

/** Share of tokens whose importance weight exp(old − engine) exceeds the TIS cap (what truncation clips). */
function truncatedShare(
  oldLogprobs: Float32Array,
  engineLogprobs: Float32Array,
  cap: number,
  lossMask: Uint8Array | undefined,
): number {
  let clipped = 0;
  let counted = 0;
  for (let t = 0; t < oldLogprobs.length; t++) {
    if (lossMask !== undefined && lossMask[t] !== 1) continue;
    counted++;
    if (Math.exp(oldLogprobs[t]! - engineLogprobs[t]!) > cap) clipped++;
  }
  return counted === 0 ? Number.NaN : clipped / counted;
}

function keptTokens(rollouts: RolloutBatch, kept: readonly number[]): number {
  let tokens = 0;
  for (const index of kept) {
    const trajectory = rollouts.trajectories[index]!;
    tokens += trajectory.promptIds.length + trajectory.responseIds.length;
  }
  return tokens;
}

/** The per-token arrays of the sequences at `indices`, packed in that order, with their offsets. */
function gatherSequences(
  indices: readonly number[],
  offsets: Int32Array,
  values: Readonly<Record<string, Float32Array | Float64Array>>,
): { offsets: Int32Array; values: Record<string, Float64Array> } {
  const subOffsets = new Int32Array(indices.length + 1);
  indices.forEach((index, position) => {
    subOffsets[position + 1] = subOffsets[position]! + offsets[index + 1]! - offsets[index]!;
  });
  const packed: Record<string, Float64Array> = {};
  for (const [key, source] of Object.entries(values)) {
    const target = new Float64Array(subOffsets[indices.length]!);
    indices.forEach((index, position) => {
      target.set(source.subarray(offsets[index]!, offsets[index + 1]!), subOffsets[position]!);
    });
    packed[key] = target;
  }
  return { offsets: subOffsets, values: packed };
}
