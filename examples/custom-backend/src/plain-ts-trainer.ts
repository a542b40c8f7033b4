import {
  type CreateTrainerOptions,
  createRoutingRecord,
  expectedWeights,
  float32Tensor,
  type LogprobResult,
  type ModelConfig,
  MoerlError,
  type NamedTensors,
  type PolicyTrainer,
  type PolicyTrainerCapabilities,
  type PreparedTrainingSequence,
  prepareTrainingBatch,
  type RoutingRecord,
  type TrainStepResult,
  toFloat32,
  validateModelConfig,
  validateWeights,
} from '@moerl/core';
import { createReferenceModel, type ReferenceModel } from '@moerl/testkit';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { lmHeadGradient, type ScoredPosition, tokenLogprob } from './lm-head-gradient.js';

/** The name this backend reports and registers under. */
export const PLAIN_TS_BACKEND_NAME = 'plain-ts';

/** Entropy is not implemented, so the suite skips its entropy case and names the capability. */
export const PLAIN_TS_CAPABILITIES: PolicyTrainerCapabilities = {
  recordRouting: true,
  routingReplay: true,
  entropy: false,
  checkpoints: true,
};

const HEAD = 'lm_head.weight';

interface Pass {
  readonly sequence: PreparedTrainingSequence;
  readonly logits: Float32Array;
  readonly finalHidden: Float32Array;
  readonly routing: RoutingRecord;
}

function checkedRate(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) {
    throw new MoerlError('INVALID_ARGUMENT', `${name} must be a non-negative finite number, found ${value}`, {
      details: { field: name, found: value },
    });
  }
  return value;
}

/** F32 copies of the expected weights, whatever float type they came in. */
function float32Weights(config: ModelConfig, weights: NamedTensors): NamedTensors {
  validateWeights(config, weights, { subject: 'plain-ts trainer weights' });
  const copy: NamedTensors = new Map();
  for (const { name } of expectedWeights(config)) {
    const tensor = weights.get(name)!;
    copy.set(name, float32Tensor(tensor.shape, toFloat32(tensor)));
  }
  return copy;
}

/**
 * A PolicyTrainer in plain TypeScript. The forward pass is `createReferenceModel` from @moerl/testkit, the
 * stand-in for a tensor library: a real backend replaces `forward` (and trains every weight). What stays
 * is everything the contract asks around it: batch validation with the right error codes, logprobs at a
 * temperature, free routing returned and replayed routing honoured, an SGD step on the objective's
 * gradient that skips non-finite steps, weights in and out, checkpoints.
 *
 * It trains the LM head only (see lm-head-gradient.ts), with plain SGD (`learningRate`, default 1e-2;
 * `maxGradNorm` clips the gradient norm).
 */
export function createPlainTsTrainer(options: CreateTrainerOptions): PolicyTrainer {
  validateModelConfig(options.config);
  const config = options.config;
  const learningRate = checkedRate('learningRate', options.learningRate, 1e-2);
  const maxGradNorm = checkedRate('maxGradNorm', options.maxGradNorm, 0);
  let weights = float32Weights(config, options.weights);
  let model: ReferenceModel = createReferenceModel(config, weights);
  let disposed = false;

  const open = () => {
    if (disposed) throw new MoerlError('INVALID_ARGUMENT', 'The plain-ts trainer was disposed');
  };
  const setWeights = (next: NamedTensors) => {
    const converted = float32Weights(config, next);
    model = createReferenceModel(config, converted);
    weights = converted;
  };

  const forward = (sequence: PreparedTrainingSequence): Pass => {
    if (sequence.fed === 0) {
      const shape = {
        positions: 0,
        moeLayers: model.moeLayers.length,
        topK: config.topK,
        numExperts: config.numExperts,
      };
      return {
        sequence,
        logits: new Float32Array(0),
        finalHidden: new Float32Array(0),
        routing: createRoutingRecord(shape),
      };
    }
    const result = model.forward(
      sequence.tokens.subarray(0, sequence.fed),
      sequence.replay === undefined ? {} : { routing: sequence.replay },
    );
    return { sequence, logits: result.logits, finalHidden: result.finalHidden, routing: result.routing };
  };

  /** Every scored position of the batch in order: position p of a sequence predicts token p + 1. */
  function* scored(passes: readonly Pass[], gradient?: Float32Array): Generator<ScoredPosition> {
    const { vocabSize: vocab, hiddenSize: hidden } = config;
    let index = 0;
    for (const { sequence, logits, finalHidden } of passes) {
      for (let p = sequence.promptLength - 1; p < sequence.fed; p++, index++) {
        yield {
          logits: logits.subarray(p * vocab, (p + 1) * vocab),
          hidden: finalHidden.subarray(p * hidden, (p + 1) * hidden),
          target: sequence.tokens[p + 1]!,
          gradient: gradient?.[index] ?? 0,
        };
      }
    }
  }

  const run = (
    batch: Parameters<PolicyTrainer['logprobs']>[0],
    // The caller's routing options as they came (mode, partialReplay, allowStaleRouting): core's
    // prepareTrainingBatch checks them against this trainer's capabilities, so nothing is ignored silently.
    routing: Parameters<PolicyTrainer['logprobs']>[1],
    temperature: number,
  ) => {
    if (!(temperature > 0) || !Number.isFinite(temperature)) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `temperature must be a positive finite number, found ${temperature}`,
        {
          details: { field: 'temperature', found: temperature },
        },
      );
    }
    const passes = prepareTrainingBatch(config, batch, routing, PLAIN_TS_CAPABILITIES).map(forward);
    const sequenceOffsets = new Int32Array(passes.length + 1);
    passes.forEach(({ sequence }, i) => {
      sequenceOffsets[i + 1] = sequenceOffsets[i]! + sequence.tokens.length - sequence.promptLength;
    });
    const logprobs = Float32Array.from(scored(passes), (position) =>
      tokenLogprob(position.logits, position.target, temperature),
    );
    return { passes, logprobs, sequenceOffsets };
  };

  return {
    specificationVersion: 'v1',
    backendName: PLAIN_TS_BACKEND_NAME,
    capabilities: PLAIN_TS_CAPABILITIES,
    config,

    async logprobs(batch, logprobOptions): Promise<LogprobResult> {
      open();
      if (logprobOptions.returnEntropy === true) {
        throw new MoerlError(
          'UNSUPPORTED',
          'The plain-ts trainer does not compute entropy (capabilities.entropy is false)',
        );
      }
      const { passes, logprobs, sequenceOffsets } = run(
        batch,
        logprobOptions,
        logprobOptions.temperature ?? 1,
      );
      return logprobOptions.routing === 'free'
        ? { logprobs, sequenceOffsets, routing: passes.map((pass) => pass.routing) }
        : { logprobs, sequenceOffsets };
    },

    async trainStep(batch, objective, stepOptions): Promise<TrainStepResult> {
      open();
      if (objective.needsEntropy === true) {
        throw new MoerlError(
          'UNSUPPORTED',
          `Objective ${objective.name} needs entropy, which plain-ts does not compute`,
        );
      }
      const temperature = stepOptions.temperature ?? 1;
      const { passes, logprobs, sequenceOffsets } = run(batch, stepOptions, temperature);
      const { loss, gradient, metrics } = objective.evaluate({ logprobs, sequenceOffsets });
      if (gradient.length !== logprobs.length) {
        throw new MoerlError(
          'INVALID_ARGUMENT',
          `Objective ${objective.name} must return one gradient value per token (${logprobs.length}), found ${gradient.length}`,
          { details: { field: 'gradient', expected: logprobs.length, found: gradient.length } },
        );
      }
      const skip: TrainStepResult = { loss, gradNorm: Number.NaN, skipped: true, metrics };
      if (!Number.isFinite(loss) || !gradient.every(Number.isFinite)) return skip;

      const headGradient = lmHeadGradient(
        scored(passes, gradient),
        config.vocabSize,
        config.hiddenSize,
        temperature,
      );
      const gradNorm = Math.hypot(...headGradient);
      if (!Number.isFinite(gradNorm)) return skip;
      const step = learningRate * (maxGradNorm > 0 && gradNorm > maxGradNorm ? maxGradNorm / gradNorm : 1);
      const head = weights.get(HEAD)!;
      const updated = Float32Array.from(
        head.data as Float32Array,
        (value, i) => value - step * headGradient[i]!,
      );
      setWeights(new Map(weights).set(HEAD, float32Tensor(head.shape, updated)));
      return { loss, gradNorm, skipped: false, metrics };
    },

    async exportWeights() {
      open();
      return float32Weights(config, weights);
    },

    async loadWeights(next) {
      open();
      setWeights(next);
    },

    async saveCheckpoint(directory) {
      open();
      await saveCheckpoint(directory, config, weights);
    },

    async loadCheckpoint(directory) {
      open();
      setWeights(await loadCheckpoint(directory, config));
    },

    async dispose() {
      disposed = true;
    },
  };
}
