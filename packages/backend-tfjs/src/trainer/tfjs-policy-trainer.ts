import {
  type CreateTrainerOptions,
  crossEntropyObjective,
  type LogprobOptions,
  type LogprobResult,
  type ModelConfig,
  MoerlError,
  type NamedTensors,
  type Objective,
  type ObjectiveResult,
  type PartialReplayOptions,
  type PolicyTrainer,
  type PolicyTrainerCapabilities,
  prepareTrainingBatch,
  type RoutingRecord,
  type TrainingBatch,
  type TrainStepOptions,
  type TrainStepResult,
  validateModelConfig,
} from '@moerl/core';
import * as tf from '@tensorflow/tfjs-core';
import { forwardHidden } from '../model/forward.js';
import {
  assignParameters,
  createParameters,
  disposeParameters,
  type ModelParameters,
  readParameters,
} from '../model/parameters.js';
import { createPositionTableCache } from '../model/position-tables.js';
import { tokenLogprobs } from '../model/token-logprobs.js';
import { selectTfjsBackend, type TfjsBackendSelection } from '../runtime/tfjs-runtime.js';
import { type AdamW, createAdamW, type OptimizerPlacement } from './adamw.js';
import { readCheckpoint, writeCheckpoint } from './checkpoint.js';
import { globalGradientNorm } from './gradient-norm.js';
import { learningRateAt } from './learning-rate-schedule.js';
import { type PaddedSequences, type PreparedSequence, padSequences } from './prepare-batch.js';
import { surrogateGradients } from './surrogate-gradients.js';
import { type ResolvedTrainerOptions, resolveTrainerOptions } from './trainer-options.js';

export const TFJS_TRAINER_CAPABILITIES: PolicyTrainerCapabilities = {
  recordRouting: true,
  routingReplay: true,
  partialReplay: true,
  entropy: true,
  checkpoints: true,
};

export const DEFAULT_LEARNING_RATE = 1e-4;

/** Fraction of replayed expert slots that partial replay gave to the trainer (0 when none was replayed). */
function replaceRateOf(counts: { readonly replayed: number; readonly replaced: number }): number {
  return counts.replayed === 0 ? 0 : counts.replaced / counts.replayed;
}

export interface TfjsTrainerStats {
  /** Optimizer updates applied. */
  readonly steps: number;
  /** Steps skipped because the loss, an objective gradient or the weight gradient was not finite. */
  readonly skippedSteps: number;
}

/** The PolicyTrainer of this package, plus what only it offers. */
export interface TfjsPolicyTrainer extends PolicyTrainer {
  /** Which tfjs backend runs it and why better ones were skipped. */
  readonly backend: TfjsBackendSelection;
  stats(): TfjsTrainerStats;
  /** One supervised step (cross-entropy on the response tokens); free routing unless given. */
  supervisedStep(batch: TrainingBatch, options?: Partial<TrainStepOptions>): Promise<TrainStepResult>;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new MoerlError('INVALID_ARGUMENT', `${name} must be a non-negative finite number, found ${value}`, {
      details: { field: name, found: value },
    });
  }
  return value;
}

function checkTemperature(temperature: number): number {
  if (typeof temperature !== 'number' || !(temperature > 0) || !Number.isFinite(temperature)) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `temperature must be a positive finite number, found ${temperature}`,
      {
        details: { field: 'temperature', found: temperature },
      },
    );
  }
  return temperature;
}

const allFinite = (values: Float32Array | undefined) => values === undefined || values.every(Number.isFinite);

/** Splits sequences into consecutive micro-batches of at most `size` (none for no sequences). */
function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size));
  return chunks;
}

/**
 * Builds the TensorFlow.js policy trainer: loads the best available tfjs backend (or those named in
 * `backendOptions.backends`), copies the weights into variables and sets up AdamW. See README for options.
 */
export async function createTfjsPolicyTrainer(options: CreateTrainerOptions): Promise<TfjsPolicyTrainer> {
  validateModelConfig(options.config);
  const config: ModelConfig = { ...options.config, mlpOnlyLayers: [...options.config.mlpOnlyLayers] };
  const baseLearningRate = nonNegative('learningRate', options.learningRate, DEFAULT_LEARNING_RATE);
  const maxGradNorm = nonNegative('maxGradNorm', options.maxGradNorm, 0);
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) {
    throw new MoerlError('INVALID_ARGUMENT', `seed must be a safe integer, found ${seed}`, {
      details: { field: 'seed', found: seed },
    });
  }
  const settings: ResolvedTrainerOptions = resolveTrainerOptions(options.backendOptions);
  const backend = await selectTfjsBackend(settings.backends);
  const parameters: ModelParameters = createParameters(config, options.weights);
  // wasm and cpu tensors live in host memory: updating there skips a dozen tfjs ops per parameter.
  const placement: OptimizerPlacement =
    backend.name === 'tfjs-wasm' || backend.name === 'tfjs-cpu' ? 'host' : 'tensors';
  const optimizer: AdamW = createAdamW(parameters, settings, placement);
  const positionTables = createPositionTableCache(config);
  let skippedSteps = 0;
  let disposed = false;

  const assertOpen = () => {
    if (disposed) throw new MoerlError('INVALID_ARGUMENT', 'The tfjs trainer was disposed');
  };

  /** The sequences split into micro-batches, each padded once for every pass that reads it. */
  const padMicroBatches = (sequences: readonly PreparedSequence[]): PaddedSequences[] =>
    chunk(
      sequences,
      Number.isFinite(settings.microBatchSize) ? settings.microBatchSize : Math.max(1, sequences.length),
    ).map(padSequences);

  /** Forward only: logprobs (and entropy) of every response token, plus the routing used. */
  const evaluate = (
    microBatches: readonly PaddedSequences[],
    temperature: number,
    withEntropy: boolean,
    partialReplay: PartialReplayOptions | undefined,
  ): {
    logprobs: Float32Array;
    entropy: Float32Array | undefined;
    offsets: Int32Array;
    routing: RoutingRecord[];
    replayCounts: { replayed: number; replaced: number };
  } => {
    const replayCounts = { replayed: 0, replaced: 0 };
    const routing: RoutingRecord[] = [];
    // Offsets are known up front, so each micro-batch writes its slice in place (no growing arrays).
    const sequenceCount = microBatches.reduce((count, padded) => count + padded.batch.size, 0);
    const offsets = new Int32Array(sequenceCount + 1);
    const microStarts: number[] = [];
    let sequenceIndex = 0;
    for (const padded of microBatches) {
      const first = offsets[sequenceIndex]!;
      microStarts.push(first);
      for (let index = 0; index < padded.batch.size; index++, sequenceIndex++) {
        offsets[sequenceIndex + 1] = first + padded.offsets[index + 1]!;
      }
    }
    const logprobs = new Float32Array(offsets[sequenceCount]!);
    const entropy = withEntropy ? new Float32Array(offsets[sequenceCount]!) : undefined;
    microBatches.forEach((padded, micro) => {
      tf.tidy(() => {
        const forward = forwardHidden(parameters, padded.batch, {
          replay: padded.replay,
          experts: settings.experts,
          positionTables,
          ...(partialReplay === undefined ? {} : { partialReplay }),
        });
        replayCounts.replayed += forward.replayedSlots;
        replayCounts.replaced += forward.replacedSlots;
        routing.push(...forward.routing);
        if (padded.rows.length > 0) {
          const out = tokenLogprobs(
            parameters,
            forward.hidden,
            padded.rows,
            padded.targets,
            temperature,
            withEntropy,
          );
          logprobs.set(out.logprobs.dataSync(), microStarts[micro]!);
          if (out.entropy !== undefined) entropy?.set(out.entropy.dataSync(), microStarts[micro]!);
        }
      });
    });
    return { logprobs, entropy, offsets, routing, replayCounts };
  };

  const checkObjectiveResult = (objective: Objective, result: ObjectiveResult, tokens: number) => {
    for (const [name, values] of [
      ['gradient', result.gradient],
      ['entropyGradient', result.entropyGradient],
    ] as const) {
      // The gradient is required by the contract; the entropy gradient only when the objective uses entropy.
      const required = name === 'gradient';
      if (
        (required || values !== undefined) &&
        (!(values instanceof Float32Array) || values.length !== tokens)
      ) {
        throw new MoerlError(
          'INVALID_ARGUMENT',
          `Objective ${objective.name} returned ${values?.length} ${name} values for ${tokens} tokens`,
          { details: { objective: objective.name, field: name, expected: tokens, found: values?.length } },
        );
      }
    }
  };

  const trainStep = async (
    batch: TrainingBatch,
    objective: Objective,
    stepOptions: TrainStepOptions,
  ): Promise<TrainStepResult> => {
    assertOpen();
    const temperature = checkTemperature(stepOptions.temperature ?? 1);
    const sequences = prepareTrainingBatch(config, batch, stepOptions, TFJS_TRAINER_CAPABILITIES);
    const { partialReplay } = stepOptions;
    const replayCounts = { replayed: 0, replaced: 0 };
    const withEntropy = objective.needsEntropy === true;
    const microBatches = padMicroBatches(sequences);
    const totalRows = microBatches.reduce((rows, padded) => rows + padded.rows.length, 0);
    let auxLoss = 0;
    let imbalance: number[] = [];
    const routerAux = (padded: PaddedSequences) =>
      settings.routerAuxLossCoefficient > 0 && totalRows > 0
        ? {
            routerAux: {
              coefficient: settings.routerAuxLossCoefficient,
              weight: padded.rows.length / totalRows,
              report: (loss: number, load: number[]) => {
                auxLoss += (loss * padded.rows.length) / totalRows;
                imbalance =
                  imbalance.length === 0 ? load : imbalance.map((value, i) => Math.max(value, load[i]!));
              },
            },
          }
        : {};
    const common = { temperature, withEntropy, experts: settings.experts, positionTables };
    const total = new Map<string, tf.Tensor>();
    const accumulate = (gradients: Map<string, tf.Tensor>) => {
      for (const [name, gradient] of gradients) {
        const previous = total.get(name);
        if (previous === undefined) total.set(name, gradient);
        else {
          total.set(name, tf.add(previous, gradient));
          previous.dispose();
          gradient.dispose();
        }
      }
    };
    const disposeTotal = () => {
      for (const gradient of total.values()) gradient.dispose();
    };

    let finiteObjective = true;
    const evaluateObjective = (input: {
      logprobs: Float32Array;
      offsets: Int32Array;
      entropy: Float32Array | undefined;
    }) => {
      const evaluated = objective.evaluate({
        logprobs: input.logprobs,
        sequenceOffsets: input.offsets,
        ...(input.entropy === undefined ? {} : { entropy: input.entropy }),
      });
      checkObjectiveResult(objective, evaluated, input.logprobs.length);
      finiteObjective =
        Number.isFinite(evaluated.loss) &&
        allFinite(evaluated.gradient) &&
        allFinite(evaluated.entropyGradient);
      return evaluated;
    };
    // A non-finite objective still runs its backward pass on zeros (cheap and leak-free); the step is skipped.
    const safe = (values: Float32Array | undefined) =>
      finiteObjective ? values : values && new Float32Array(values.length);

    /** One micro-batch: the objective is evaluated inside the taped forward pass (one forward only). */
    const singlePass = (padded: PaddedSequences): ObjectiveResult => {
      let evaluated: ObjectiveResult | undefined;
      accumulate(
        surrogateGradients(
          parameters,
          padded,
          {
            ...common,
            ...routerAux(padded),
            replay: padded.replay,
            ...(partialReplay === undefined ? {} : { partialReplay, replayCounts }),
          },
          (logprobs, entropy) => {
            evaluated = evaluateObjective({ logprobs, offsets: padded.offsets, entropy });
            return { gradient: safe(evaluated.gradient)!, entropyGradient: safe(evaluated.entropyGradient) };
          },
        ),
      );
      if (evaluated === undefined) throw new Error('internal: the taped pass did not evaluate the objective');
      return evaluated;
    };

    /**
     * Several micro-batches (or none with tokens): the objective needs every logprob first. A forward pass
     * records the routing it used (free or replayed), and the taped passes replay exactly that routing.
     */
    const forwardThenTapedPasses = (): ObjectiveResult => {
      // Partial replay decides here; the taped passes replay the routing it settled on.
      const first = evaluate(microBatches, temperature, withEntropy, partialReplay);
      replayCounts.replayed += first.replayCounts.replayed;
      replayCounts.replaced += first.replayCounts.replaced;
      const evaluated = evaluateObjective(first);
      let start = 0;
      let sequenceIndex = 0;
      for (const padded of microBatches) {
        const replay = first.routing.slice(sequenceIndex, sequenceIndex + padded.batch.size);
        sequenceIndex += padded.batch.size;
        const count = padded.rows.length;
        const from = start;
        start += count;
        if (count === 0) continue;
        const gradient = safe(evaluated.gradient)!.subarray(from, from + count);
        const entropyGradient = safe(evaluated.entropyGradient)?.subarray(from, from + count);
        accumulate(
          surrogateGradients(parameters, padded, { ...common, ...routerAux(padded), replay }, () => ({
            gradient,
            entropyGradient,
          })),
        );
      }
      return evaluated;
    };

    try {
      const only = microBatches.length === 1 ? microBatches[0]! : undefined;
      const result = only !== undefined && only.rows.length > 0 ? singlePass(only) : forwardThenTapedPasses();

      const { loss } = result;
      const metrics = {
        ...result.metrics,
        ...(settings.routerAuxLossCoefficient > 0 && imbalance.length > 0
          ? {
              routerAuxLoss: auxLoss,
              // The busiest expert's load over a balanced one's, worst MoE layer (1 = balanced).
              expertLoadImbalance: Math.max(...imbalance),
            }
          : {}),
        ...(partialReplay === undefined ? {} : { replaceRate: replaceRateOf(replayCounts) }),
      };
      const gradNorm = globalGradientNorm(total, placement);
      if (!finiteObjective || !Number.isFinite(gradNorm)) {
        skippedSteps++;
        settings.onWarning(
          new MoerlError(
            'NON_FINITE',
            `trainStep skipped (weights unchanged): ${finiteObjective ? `gradient norm is ${gradNorm}` : `objective ${objective.name} returned a non-finite loss (${loss}) or gradient`}; ${skippedSteps} step(s) skipped so far`,
            { details: { loss, gradNorm, skippedSteps } },
          ),
        );
        return { loss, gradNorm: finiteObjective ? gradNorm : Number.NaN, skipped: true, metrics };
      }
      const clip = maxGradNorm > 0 && gradNorm > maxGradNorm ? maxGradNorm / gradNorm : 1;
      const learningRate = learningRateAt(baseLearningRate, settings.schedule, optimizer.step);
      if (total.size > 0) optimizer.apply(total, learningRate, clip);
      // The rate this update applied (the schedule's), so a run log can show it.
      return { loss, gradNorm, skipped: false, metrics: { ...metrics, learningRate } };
    } finally {
      disposeTotal();
    }
  };

  return {
    specificationVersion: 'v1',
    backendName: `tfjs:${backend.name}`,
    capabilities: TFJS_TRAINER_CAPABILITIES,
    config,
    backend,

    async logprobs(batch: TrainingBatch, logprobOptions: LogprobOptions): Promise<LogprobResult> {
      assertOpen();
      const temperature = checkTemperature(logprobOptions.temperature ?? 1);
      const sequences = prepareTrainingBatch(config, batch, logprobOptions, TFJS_TRAINER_CAPABILITIES);
      const { partialReplay } = logprobOptions;
      const result = evaluate(
        padMicroBatches(sequences),
        temperature,
        logprobOptions.returnEntropy === true,
        partialReplay,
      );
      return {
        logprobs: result.logprobs,
        sequenceOffsets: result.offsets,
        ...(result.entropy === undefined ? {} : { entropy: result.entropy }),
        ...(logprobOptions.routing === 'free' ? { routing: result.routing } : {}),
        ...(partialReplay === undefined ? {} : { replaceRate: replaceRateOf(result.replayCounts) }),
      };
    },

    trainStep,

    supervisedStep(batch, stepOptions = {}) {
      return trainStep(batch, crossEntropyObjective(), {
        routing: stepOptions.routing ?? 'free',
        ...stepOptions,
      });
    },

    stats() {
      return { steps: optimizer.step, skippedSteps };
    },

    async exportWeights(): Promise<NamedTensors> {
      assertOpen();
      return readParameters(parameters);
    },

    async loadWeights(weights: NamedTensors) {
      assertOpen();
      assignParameters(parameters, weights);
    },

    async saveCheckpoint(directory: string) {
      assertOpen();
      await writeCheckpoint(directory, config, {
        weights: await readParameters(parameters),
        optimizer: await optimizer.exportState(),
        state: { step: optimizer.step, skippedSteps, seed },
      });
    },

    async loadCheckpoint(directory: string) {
      assertOpen();
      const contents = await readCheckpoint(directory, config);
      // Everything is checked before anything is assigned: a bad file leaves the trainer as it was.
      if (contents.optimizer !== undefined) optimizer.checkState(contents.optimizer);
      try {
        assignParameters(parameters, contents.weights);
      } catch (error) {
        throw MoerlError.isInstance(error, 'CHECKPOINT_INVALID')
          ? error
          : new MoerlError(
              'CHECKPOINT_INVALID',
              `Cannot load the checkpoint in ${directory}: ${(error as Error).message}`,
              {
                cause: error,
                details: { directory },
              },
            );
      }
      // A weights-only checkpoint (another backend's) starts the optimizer afresh.
      optimizer.loadState(contents.optimizer, contents.state?.step ?? 0);
      skippedSteps = contents.state?.skippedSteps ?? 0;
    },

    async dispose() {
      if (disposed) return;
      disposed = true;
      optimizer.dispose();
      positionTables.dispose();
      disposeParameters(parameters);
    },
  };
}
