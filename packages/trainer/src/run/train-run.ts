import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  MoerlError,
  type NamedTensors,
  type PolicyTrainer,
  type RolloutEngine,
  readSafetensorsFile,
  writeSafetensorsFile,
} from '@moerl/core';
import { validateRunConfig } from '../config/resolve-run-config.js';
import type { RunConfig } from '../config/run-config-schema.js';
import type { StepMetrics } from '../metrics/step-metrics.js';
import { createEvalSet } from '../tasks/task-registry.js';
import { resolveRunBackends } from './backends.js';
import { createCoalescingWriter } from './coalescing-writer.js';
import { evaluateAccuracy } from './evaluate.js';
import { describeMemory } from './memory-estimate.js';
import {
  initialWeights,
  logprobTemperatureOf,
  maxNewTokensOf,
  samplingParamsFor,
  sharedTrainerOptions,
} from './model-setup.js';
import { preflightRun, prepareRunDirectory } from './preflight.js';
import { createRunEngine } from './rollout-engine.js';
import { RolloutPipeline } from './rollout-pipeline.js';
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
import { readSamples, type SampleRow, sampleRows, writeSamples } from './sample-log.js';
import { type StepContext, trainOnRollouts } from './step-pipeline.js';
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

/** A full RL run: warm start, then the GRPO/GSPO loop with the configured routing replay. */
export async function trainRun(options: TrainRunOptions): Promise<TrainRunResult> {
  const { config, events } = options;
  const paths = runPaths(options.directory);
  // Everything checkable is checked before the run directory is touched.
  const { task, modelConfig, memory } = await preflightRun(config);
  const backends = await resolveRunBackends(config.backends);
  await prepareRunDirectory(paths, options);
  for (const line of backends.summary) events?.log?.(line);
  events?.log?.(describeMemory(memory));
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
  let samples: SampleRow[] = [];
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
      weights: await initialWeights(config, modelConfig),
      learningRate: config.train.learningRate,
    });
    await trainer.loadCheckpoint(trainerDirectory);
    metrics = (await readMetrics(paths.metrics)).slice(0, state.metricsRows);
    samples = (await readSamples(paths.samples)).filter((row) => row.step <= state.step);
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
  const engineWeights = resumedRolloutPolicy ?? (await trainer.exportWeights());
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
  const pipeline = new RolloutPipeline(context, {
    ahead: config.rollout.async,
    lastStep: config.train.steps,
    engineWeights,
    // Only an engine off the trainer's thread converts weights while the trainer trains; in process the
    // update would interleave with training on one thread (measured 0.70× slower steps).
    updateInBackground: config.rollout.worker || config.rollout.servers.length > 0,
    // The worker answers calls in order; an HTTP server may run a batch before an update it is still reading.
    ordersCalls: config.rollout.worker,
  });
  if (config.rollout.async > 0 && !config.rollout.worker) {
    events?.log?.(
      'rollout.async 1 without rollout.worker: the next batch starts only once the trainer’s thread is free, so sampling and training barely overlap; set rollout.worker: true',
    );
  }
  const logWriter = createCoalescingWriter();
  try {
    if (resumedRolloutPolicy !== undefined)
      await pipeline.resume(firstStep - 1, await trainer.exportWeights());
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
      const { collected, waitSeconds: rolloutWaitSeconds } = await pipeline.take(step);
      const {
        metrics: trained,
        skipped,
        stepSkipped,
        weights,
      } = await trainOnRollouts(context, step, collected, events);
      await pipeline.publish(weights, step);
      const row = { ...trained, rolloutWaitSeconds };
      skippedSteps += skipped;
      let evalAccuracy: number | undefined;
      let seenEvalAccuracy: number | undefined;
      const last = step === config.train.steps;
      if ((config.eval.every > 0 && step % config.eval.every === 0) || last) {
        events?.phase?.('eval', step, config.train.steps);
        await pipeline.ready();
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
      if (config.log.samples > 0)
        samples.push(...sampleRows(task, collected.rollouts, step, config.log.samples));
      // Written while the next step runs (two fsync'd files a step were up to a fifth of a small step).
      const metricsSnapshot = metrics.slice();
      const samplesSnapshot = config.log.samples > 0 ? samples.slice() : undefined;
      logWriter.schedule(async () => {
        await writeMetrics(paths, metricsSnapshot);
        if (samplesSnapshot !== undefined) await writeSamples(paths.samples, samplesSnapshot);
      });
      events?.step?.(full, config.train.steps);
      const stop = options.signal?.aborted === true || options.stopAfterStep === step;
      if (stop || last || (config.checkpoint.every > 0 && step % config.checkpoint.every === 0)) {
        // A checkpoint names how many metric rows it covers: they are on disk before it is.
        await logWriter.flush();
        const rolloutPolicy = pipeline.rolloutPolicy();
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
    await logWriter.flush();
  } finally {
    // The steps that finished are logged even when a later one threw (whose error is the one reported).
    await logWriter.flush().catch(() => {});
    // A batch still being sampled (a step that threw) finishes before its engine goes away.
    await pipeline.drain();
    await engine.dispose();
    await reference?.dispose();
    await trainer.dispose();
  }
  const allStepsSkipped = metrics.length > 0 && metrics.every((row) => row.skipped === true);
  return { paths, metrics, stoppedEarly, initialEvalAccuracy, initialSeenEvalAccuracy, allStepsSkipped };
}
