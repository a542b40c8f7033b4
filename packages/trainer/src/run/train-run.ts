import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createObjective, filterUniformGroups } from '@moerl/algos';
import {
  createRandom,
  type LogprobResult,
  MoerlError,
  type NamedTensors,
  type PolicyTrainer,
  type RolloutEngine,
  readSafetensorsFile,
  type SamplingParams,
  type TrainingBatch,
  type TrainStepResult,
  writeSafetensorsFile,
} from '@moerl/core';
import { validateRunConfig } from '../config/resolve-run-config.js';
import type { RunConfig } from '../config/run-config-schema.js';
import type { StepMetrics } from '../metrics/step-metrics.js';
import { updateMetrics } from '../metrics/update-metrics.js';
import { sampleTrainingExamples } from '../tasks/prompt-sampler.js';
import type { Task } from '../tasks/task.js';
import { createEvalSet } from '../tasks/task-registry.js';
import { tokenAdvantages } from './advantages.js';
import { resolveRunBackends } from './backends.js';
import { checkUpdate } from './checked-update.js';
import { evaluateAccuracy } from './evaluate.js';
import { miniBatchRanges } from './mini-batches.js';
import { mismatchMetrics } from './mismatch-metrics.js';
import {
  initialWeights,
  logprobTemperatureOf,
  maxNewTokensOf,
  samplingParamsFor,
  sharedTrainerOptions,
} from './model-setup.js';
import { preflightRun, prepareRunDirectory } from './preflight.js';
import { collectRollouts, type RolloutBatch, trainingBatchOf } from './rollout-batch.js';
import { createRunEngine } from './rollout-engine.js';
import {
  type RunPaths,
  readInitialEvals,
  readLatestCheckpoint,
  readMetrics,
  runPaths,
  saveRunCheckpoint,
  writeInitialEval,
  writeMetrics,
  writeRunConfig,
} from './run-directory.js';
import type { RunEvents } from './run-events.js';
import { warmStartedWeights, warmStartProblems } from './warm-start.js';

export interface TrainRunOptions {
  readonly config: RunConfig;
  /** The run directory (created if missing). */
  readonly directory: string;
  /** Continue from the run directory's latest checkpoint. */
  readonly resume?: boolean;
  /** Replace a run already in `directory` (without it, and without `resume`, that is an error). */
  readonly force?: boolean;
  readonly events?: RunEvents;
  /** When aborted, the run stops after the current step and writes a checkpoint. */
  readonly signal?: AbortSignal;
  /** Stop (as if aborted) after this step; for tests of resume. */
  readonly stopAfterStep?: number;
}

export interface TrainRunResult {
  readonly paths: RunPaths;
  readonly metrics: readonly StepMetrics[];
  readonly stoppedEarly: boolean;
  /** Held-out accuracy before the first RL step (NaN when unknown, e.g. a resumed run without the file). */
  readonly initialEvalAccuracy: number;
  /** Accuracy on problems the warm start trained on, before the first RL step (NaN without a warm start). */
  readonly initialSeenEvalAccuracy: number;
  /** Every RL step was skipped (its metrics row says `skipped`): the policy never changed. */
  readonly allStepsSkipped: boolean;
}

const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);
const mean = (values: readonly number[]) => (values.length === 0 ? Number.NaN : sum(values) / values.length);

/** Refuses up front, before any rollout, a replay mode the chosen backends cannot do. */
function assertReplaySupported(
  replay: RunConfig['replay'],
  trainer: PolicyTrainer,
  engine: RolloutEngine,
): void {
  const needs: [boolean, string][] =
    replay === 'R3'
      ? [
          [engine.capabilities.recordRouting, `the engine (${engine.backendName}) to record routing`],
          [trainer.capabilities.routingReplay, `the trainer (${trainer.backendName}) to replay routing`],
        ]
      : replay === 'R2'
        ? [
            [trainer.capabilities.recordRouting, `the trainer (${trainer.backendName}) to record routing`],
            [trainer.capabilities.routingReplay, `the trainer (${trainer.backendName}) to replay routing`],
          ]
        : [];
  const missing = needs.filter(([ok]) => !ok).map(([, what]) => what);
  if (missing.length > 0) {
    throw new MoerlError('UNSUPPORTED', `replay ${replay} needs ${missing.join(' and ')}`, {
      details: { field: 'replay', found: replay },
    });
  }
}

/** A resumed run must be the run that was checkpointed: same config except how many steps to go. */
async function checkSameConfig(paths: RunPaths, config: RunConfig): Promise<void> {
  let saved: RunConfig;
  try {
    saved = validateRunConfig(JSON.parse(await readFile(paths.config, 'utf8')), paths.config);
  } catch (error) {
    throw new MoerlError('CHECKPOINT_INVALID', `Cannot resume: ${paths.config} is missing or invalid`, {
      cause: error,
      details: { path: paths.config },
    });
  }
  const comparable = (value: RunConfig) => JSON.stringify({ ...value, train: { ...value.train, steps: 0 } });
  if (comparable(saved) !== comparable(config)) {
    throw new MoerlError(
      'CONFIG_INVALID',
      `Cannot resume ${paths.root} with a different config than it was started with (only train.steps may change); resume with the same preset, file and --set flags, or with none to reuse ${paths.config}`,
      { details: { path: paths.config } },
    );
  }
}

/** Same batch, with the given routing record attached to each sequence (for replay). */
function withRouting(batch: TrainingBatch, routing: LogprobResult['routing']): TrainingBatch {
  return {
    sequences: batch.sequences.map((sequence, index) => {
      const record = routing?.[index];
      return record === undefined ? sequence : { ...sequence, routing: record };
    }),
  };
}

interface StepContext {
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

/** In a rollout.async checkpoint: the policy the engine sampled the next step's batch with. */
const ROLLOUT_POLICY_FILE = 'rollout-policy.safetensors';

async function readRolloutPolicy(checkpoint: string): Promise<NamedTensors> {
  const path = join(checkpoint, ROLLOUT_POLICY_FILE);
  try {
    return (await readSafetensorsFile(path)).tensors;
  } catch (error) {
    throw new MoerlError(
      'CHECKPOINT_INVALID',
      `Checkpoint ${checkpoint} has no readable ${ROLLOUT_POLICY_FILE}, which a rollout.async run resumes from (${(error as Error).message}); it was written by a run without rollout.async, or damaged`,
      { cause: error, details: { path } },
    );
  }
}

/** One step's rollouts, sampled by the engine at whatever weight version it holds when the call starts. */
interface CollectedRollouts {
  readonly rollouts: RolloutBatch;
  readonly rolloutSeconds: number;
  readonly cachedTokens: number;
}

async function collectStepRollouts(context: StepContext, step: number): Promise<CollectedRollouts> {
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
  const rollouts: RolloutBatch = await collectRollouts(engine, task, examples, {
    groupSize: config.rollout.groupSize,
    sampling: { ...context.sampling, seed: step },
    random: random.fork('sampling'),
    formatReward: config.task.formatReward,
    idPrefix: `s${step}`,
  });
  const rolloutSeconds = (performance.now() - rolloutStart) / 1000;
  return { rollouts, rolloutSeconds, cachedTokens: engine.stats().cachedPromptTokens - cachedBefore };
}

/**
 * Trains on one step's rollouts. The engine keeps its weights: the caller hands it `weights` once no batch
 * is being sampled (with rollout.async the next step's batch may still be running).
 */
async function trainOnRollouts(
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
  const mismatch = mismatchMetrics(rollouts.trajectories, rollouts.engineLogprobs, free, replay);

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
  const parts = miniBatchRanges(kept.length, config.train.miniBatches).map(([start, end]) => {
    const indices = kept.slice(start, end);
    const perToken: Record<string, Float32Array | Float64Array> = {
      oldLogprobs,
      advantages,
      engine: rollouts.engineLogprobs,
    };
    if (referenceLogprobs !== undefined) perToken.reference = referenceLogprobs;
    const sub = gatherSequences(indices, rollouts.sequenceOffsets, perToken);
    const objective = createObjective(a.objective, {
      batch: {
        sequenceOffsets: sub.offsets,
        oldLogprobs: sub.values.oldLogprobs!,
        advantages: sub.values.advantages!,
        engineLogprobs: sub.values.engine!,
        ...(sub.values.reference === undefined ? {} : { refLogprobs: sub.values.reference }),
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
  });
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
      tisClipFraction: truncatedShare(oldLogprobs, rollouts.engineLogprobs, a.importanceSamplingThreshold),
      // The trainer holds version step − 1 (the engine gets version `step` after the update).
      routeAge: routeAge(rollouts.trajectories, step - 1),
      rolloutStaleness: Math.max(
        ...rollouts.trajectories.map(({ weightVersion }) => step - 1 - weightVersion),
      ),
      ...mismatch,
      prefixCacheHitRate: rollouts.promptTokens === 0 ? 0 : cachedTokens / rollouts.promptTokens,
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

/** Share of tokens whose importance weight exp(old − engine) exceeds the TIS cap (what truncation clips). */
function truncatedShare(oldLogprobs: Float32Array, engineLogprobs: Float32Array, cap: number): number {
  let clipped = 0;
  for (let t = 0; t < oldLogprobs.length; t++) {
    if (Math.exp(oldLogprobs[t]! - engineLogprobs[t]!) > cap) clipped++;
  }
  return oldLogprobs.length === 0 ? Number.NaN : clipped / oldLogprobs.length;
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

/** A full RL run: warm start, then the GRPO/GSPO loop with the configured routing replay. */
export async function trainRun(options: TrainRunOptions): Promise<TrainRunResult> {
  const { config, events } = options;
  const paths = runPaths(options.directory);
  // Everything checkable is checked before the run directory is touched.
  const { task, modelConfig } = await preflightRun(config);
  const backends = await resolveRunBackends(config.backends);
  await prepareRunDirectory(paths, options);
  for (const line of backends.summary) events?.log?.(line);
  const evalSet = createEvalSet(task, config.eval.size, config.seed);
  const heldOut = new Set(evalSet.map((example) => example.prompt));
  const maxNewTokens = maxNewTokensOf(config, task);
  const sampling = samplingParamsFor(config, task);
  const trainerOptions = {
    config: modelConfig,
    seed: config.seed,
    maxGradNorm: config.train.maxGradNorm,
    backendOptions: {
      ...sharedTrainerOptions(config),
      schedule:
        config.train.schedule === 'cosine'
          ? {
              kind: 'warmup-cosine',
              warmupSteps: config.train.warmupSteps,
              totalSteps: config.train.steps * config.train.miniBatches * config.train.epochs,
              minLearningRate: config.train.learningRate / 10,
            }
          : { kind: 'constant' },
    },
  };

  let metrics: StepMetrics[] = [];
  let firstStep = 1;
  let skippedSteps = 0;
  let trainer: PolicyTrainer;
  // rollout.async resumes with the weights its engine sampled the next batch with (one version back).
  let resumedRolloutPolicy: NamedTensors | undefined;
  if (options.resume === true) {
    await checkSameConfig(paths, config);
    const { state, trainerDirectory, directory } = await readLatestCheckpoint(paths);
    if (config.rollout.async > 0 && state.step < config.train.steps)
      resumedRolloutPolicy = await readRolloutPolicy(directory);
    trainer = await backends.createTrainer({
      ...trainerOptions,
      weights: initialWeights(config, modelConfig),
      learningRate: config.train.learningRate,
    });
    await trainer.loadCheckpoint(trainerDirectory);
    metrics = (await readMetrics(paths.metrics)).slice(0, state.metricsRows);
    firstStep = state.step + 1;
    skippedSteps = state.skippedSteps;
    events?.log?.(`resumed from step ${state.step}`);
  } else {
    await writeRunConfig(paths, config);
    const weights = await warmStartedWeights({ config, modelConfig, task, backends, heldOut, events });
    trainer = await backends.createTrainer({
      ...trainerOptions,
      weights,
      learningRate: config.train.learningRate,
    });
    await writeMetrics(paths, metrics);
  }
  // The KL term's reference: the policy RL started from, frozen (its weights kept for resume).
  let reference: PolicyTrainer | undefined;
  if (config.algorithm.klCoefficient > 0) {
    if (options.resume !== true) await writeSafetensorsFile(paths.reference, await trainer.exportWeights());
    const referenceWeights = (await readSafetensorsFile(paths.reference)).tensors;
    reference = await backends.createTrainer({
      ...trainerOptions,
      weights: referenceWeights,
      learningRate: config.train.learningRate,
    });
  }
  let engineWeights = resumedRolloutPolicy ?? (await trainer.exportWeights());
  let engine: RolloutEngine;
  try {
    engine = await createRunEngine({
      config,
      modelConfig,
      backends,
      paths,
      weights: engineWeights,
      weightVersion: resumedRolloutPolicy === undefined ? firstStep - 1 : firstStep - 2,
      ...(events?.log === undefined ? {} : { log: events.log }),
    });
  } catch (error) {
    await reference?.dispose();
    await trainer.dispose();
    throw error;
  }
  try {
    assertReplaySupported(config.replay, trainer, engine);
  } catch (error) {
    await engine.dispose();
    await reference?.dispose();
    await trainer.dispose();
    throw error;
  }
  const context: StepContext = {
    config,
    task,
    trainer,
    engine,
    sampling,
    heldOut,
    logprobTemperature: logprobTemperatureOf(config),
    reference,
  };

  let stoppedEarly = false;
  let initialEvalAccuracy = Number.NaN;
  let initialSeenEvalAccuracy = Number.NaN;
  // Problems the warm start trained on: accuracy there against held-out accuracy tells learning to add
  // (or reverse, …) from memorising.
  const seen = warmStartProblems(config, task, heldOut, config.eval.size);
  const seenSet = seen.examples;
  let prefetched: Promise<CollectedRollouts> | undefined;
  // The weights the engine held before its latest update: what the batch being prefetched was sampled with.
  let previousEngineWeights = resumedRolloutPolicy;
  try {
    if (resumedRolloutPolicy !== undefined) {
      // As the uninterrupted run did: the next batch from the version before the checkpoint's, then the
      // engine takes the checkpoint's weights.
      prefetched = collectStepRollouts(context, firstStep);
      await prefetched;
      engineWeights = await trainer.exportWeights();
      await engine.updateWeights(engineWeights, firstStep - 1);
    }
    if (options.resume === true) {
      ({ evalAccuracy: initialEvalAccuracy, seenEvalAccuracy: initialSeenEvalAccuracy } =
        await readInitialEvals(paths));
    } else {
      if (seen.distinct > 0) {
        const share =
          task.problemCount === undefined
            ? ''
            : ` (${((100 * seen.distinct) / task.problemCount).toPrecision(2)}% of the task's ${task.problemCount} problems)`;
        events?.log?.(`the warm start saw ${seen.distinct} distinct problems${share}`);
      }
      events?.phase?.('eval', 0, config.train.steps);
      initialEvalAccuracy = await evaluateAccuracy(engine, task, evalSet, maxNewTokens);
      initialSeenEvalAccuracy = await evaluateAccuracy(engine, task, seenSet, maxNewTokens);
      await writeInitialEval(paths, initialEvalAccuracy, initialSeenEvalAccuracy);
      events?.log?.(
        `held-out accuracy before RL: ${initialEvalAccuracy.toFixed(3)}${Number.isFinite(initialSeenEvalAccuracy) ? ` (on warm-start problems: ${initialSeenEvalAccuracy.toFixed(3)})` : ''}`,
      );
    }
    for (let step = firstStep; step <= config.train.steps; step++) {
      events?.phase?.('rollout', step, config.train.steps);
      const waitStart = performance.now();
      const collected = await (prefetched ?? collectStepRollouts(context, step));
      const rolloutWaitSeconds = (performance.now() - waitStart) / 1000;
      // rollout.async 1: the engine samples the next step's batch, with the weights it holds now, while the
      // trainer trains on this one.
      prefetched =
        config.rollout.async > 0 && step < config.train.steps
          ? collectStepRollouts(context, step + 1)
          : undefined;
      // Its failure surfaces where it is awaited, not as an unhandled rejection while the trainer works.
      prefetched?.catch(() => undefined);
      const {
        metrics: trained,
        skipped,
        stepSkipped,
        weights,
      } = await trainOnRollouts(context, step, collected, events);
      // The engine's weights change between batches, never in the middle of one.
      if (prefetched !== undefined) await prefetched.catch(() => undefined);
      previousEngineWeights = config.rollout.async > 0 ? engineWeights : undefined;
      await engine.updateWeights(weights, step);
      engineWeights = weights;
      const row = { ...trained, rolloutWaitSeconds };
      skippedSteps += skipped;
      let evalAccuracy: number | undefined;
      let seenEvalAccuracy: number | undefined;
      const last = step === config.train.steps;
      if ((config.eval.every > 0 && step % config.eval.every === 0) || last) {
        events?.phase?.('eval', step, config.train.steps);
        evalAccuracy = await evaluateAccuracy(engine, task, evalSet, maxNewTokens);
        if (seenSet.length > 0)
          seenEvalAccuracy = await evaluateAccuracy(engine, task, seenSet, maxNewTokens);
      }
      const full: StepMetrics = {
        time: new Date().toISOString(),
        ...row,
        skippedSteps,
        ...(stepSkipped ? { skipped: true } : {}),
        ...(evalAccuracy === undefined ? {} : { evalAccuracy }),
        ...(seenEvalAccuracy === undefined ? {} : { seenEvalAccuracy }),
      };
      metrics.push(full);
      await writeMetrics(paths, metrics);
      events?.step?.(full, config.train.steps);
      const stop = options.signal?.aborted === true || options.stopAfterStep === step;
      if (stop || last || (config.checkpoint.every > 0 && step % config.checkpoint.every === 0)) {
        const rolloutPolicy = previousEngineWeights;
        await saveRunCheckpoint(
          paths,
          { step, metricsRows: metrics.length, weightVersion: step, skippedSteps },
          (directory) => trainer.saveCheckpoint(directory),
          rolloutPolicy === undefined
            ? undefined
            : (directory) => writeSafetensorsFile(join(directory, ROLLOUT_POLICY_FILE), rolloutPolicy),
        );
        events?.log?.(`checkpoint at step ${step}`);
      }
      if (stop && !last) {
        stoppedEarly = true;
        break;
      }
    }
  } finally {
    // A batch still being sampled (a step that threw) finishes before its engine goes away.
    await prefetched?.catch(() => undefined);
    await engine.dispose();
    await reference?.dispose();
    await trainer.dispose();
  }
  const allStepsSkipped = metrics.length > 0 && metrics.every((row) => row.skipped === true);
  return { paths, metrics, stoppedEarly, initialEvalAccuracy, initialSeenEvalAccuracy, allStepsSkipped };
}
