import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type CreateTrainerOptions,
  createRoutingRecord,
  expectedWeights,
  float32Tensor,
  type LogprobResult,
  type ModelConfig,
  MoerlError,
  type NamedTensors,
  type Objective,
  type ObjectiveInput,
  type PolicyTrainer,
  type PolicyTrainerCapabilities,
  type PreparedTrainingSequence,
  prepareTrainingBatch,
  type RoutingRecord,
  readHfConfigFile,
  readSafetensorsFile,
  type TrainStepResult,
  writeHfConfigFile,
  writeSafetensorsFile,
} from '@moerl/core';
import { logSoftmax, softmaxEntropy } from './math.js';
import { checkTemperature } from './reference-logprobs.js';
import { createReferenceModel, type ReferenceModel } from './reference-model.js';

/*
 * A PolicyTrainer over the reference forward pass. It is correct but deliberately limited:
 *
 * **It trains only the LM head** (`lm_head.weight`), with plain SGD. Every other weight stays frozen, so the
 * gradient is exact and cheap: with `h_t` the final hidden state (after `model.norm`) at the position that
 * predicts token `y_t`, `z_t = W h_t` its logits and temperature `T`,
 *
 *   logprob_t = z_t[y_t] / T − logsumexp(z_t / T)
 *   dL/dW     = Σ_t (g_t / T) · (onehot(y_t) − softmax(z_t / T)) ⊗ h_t
 *
 * for the surrogate `L = Σ_t g_t · logprob_t` (g = the objective's gradient), plus
 * `Σ_t e_t · entropy_t` when the objective returns an entropy gradient `e`, whose derivative is
 * `dH_t/dz_t[j] = −p_j (log p_j + H_t) / T`. Everything is accumulated in float64 and the updated weights are
 * rounded to float32 once.
 *
 * It exists to prove the PolicyTrainer conformance suite (a correct trainer must pass every case) and to
 * serve as an oracle for gradient tests of real backends (with every weight but the head frozen, a backend's
 * head gradient must equal this one). Real backends train every weight. Models with tied embeddings
 * (`tieWordEmbeddings`) cannot be trained here: the head is the embedding matrix, whose gradient would also
 * flow through the input side, so `trainStep` throws `UNSUPPORTED` for them (logprobs, weights and
 * checkpoints still work).
 *
 * Other limits: one sequence at a time and no KV cache (slow, fine for tiny models); `seed` is unused, as
 * nothing is random; checkpoints are `config.json` + a single F32 `model.safetensors`.
 */

const CAPABILITIES: PolicyTrainerCapabilities = {
  recordRouting: true,
  routingReplay: true,
  entropy: true,
  checkpoints: true,
};

const DEFAULT_LEARNING_RATE = 1e-2;
const CONFIG_FILE = 'config.json';
const WEIGHTS_FILE = 'model.safetensors';

/** One sequence after validation: its tokens, and the replayed routing cut to the fed positions. */
type PreparedSequence = PreparedTrainingSequence;

/** The forward pass of one sequence over its fed positions. */
interface SequencePass {
  readonly sequence: PreparedSequence;
  /** `[fed × vocabSize]`. */
  readonly logits: Float32Array;
  /** `[fed × hiddenSize]`, the LM head's input. */
  readonly finalHidden: Float32Array;
  readonly routing: RoutingRecord;
}

interface BatchLogprobs {
  readonly logprobs: Float32Array;
  readonly sequenceOffsets: Int32Array;
  readonly entropy: Float32Array | undefined;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new MoerlError('INVALID_ARGUMENT', `${name} must be a non-negative finite number, found ${value}`, {
      details: { option: name, found: value },
    });
  }
  return value;
}

/** F32 copies of `weights` in `expectedWeights(config)` order (the caller has validated them). */
function copyWeights(config: ModelConfig, weights: NamedTensors): NamedTensors {
  const copy: NamedTensors = new Map();
  for (const spec of expectedWeights(config)) {
    const tensor = weights.get(spec.name)!;
    copy.set(spec.name, float32Tensor(tensor.shape, (tensor.data as Float32Array).slice()));
  }
  return copy;
}

/** The fields on which two configs differ, as `field: a vs b`. */
function configDifferences(trainer: ModelConfig, checkpoint: ModelConfig): string[] {
  const keys = new Set([...Object.keys(trainer), ...Object.keys(checkpoint)]) as Set<keyof ModelConfig>;
  const show = (value: unknown) => (Array.isArray(value) ? `[${value.join(', ')}]` : String(value));
  const differences: string[] = [];
  for (const key of keys) {
    const mine = show(trainer[key]);
    const theirs = show(checkpoint[key]);
    if (mine !== theirs) differences.push(`${key}: checkpoint ${theirs}, trainer ${mine}`);
  }
  return differences;
}

function asCheckpointError(error: unknown, directory: string, file: string): MoerlError {
  if (MoerlError.isInstance(error, 'CHECKPOINT_INVALID')) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new MoerlError('CHECKPOINT_INVALID', `Cannot load the checkpoint in ${directory}: ${reason}`, {
    cause: error,
    details: { directory, file },
  });
}

/**
 * A correct but limited PolicyTrainer over the reference model (backendName `reference`, every capability).
 * **`trainStep` updates only the LM head**, with plain SGD (`learningRate`, default 1e-2; optional
 * `maxGradNorm` clipping), and throws `UNSUPPORTED` for tied embeddings. It exists to prove the conformance
 * suite and to serve as an oracle for gradient tests; real backends train every weight. See the comment at
 * the top of this file for the gradient it computes.
 */
export function createReferencePolicyTrainer(options: CreateTrainerOptions): PolicyTrainer {
  const learningRate = nonNegative('learningRate', options.learningRate, DEFAULT_LEARNING_RATE);
  const maxGradNorm = nonNegative('maxGradNorm', options.maxGradNorm, 0);
  let model: ReferenceModel = createReferenceModel(options.config, options.weights);
  const config = model.config;
  let weights = copyWeights(config, options.weights);
  let disposed = false;

  const assertOpen = () => {
    if (disposed) throw new MoerlError('INVALID_ARGUMENT', 'The reference trainer was disposed');
  };

  const forward = (sequence: PreparedSequence): SequencePass => {
    if (sequence.fed === 0) {
      const routing = createRoutingRecord({
        positions: 0,
        moeLayers: model.moeLayers.length,
        topK: config.topK,
        numExperts: config.numExperts,
      });
      return { sequence, logits: new Float32Array(0), finalHidden: new Float32Array(0), routing };
    }
    const result = model.forward(
      sequence.tokens.subarray(0, sequence.fed),
      sequence.replay === undefined ? {} : { routing: sequence.replay },
    );
    return { sequence, logits: result.logits, finalHidden: result.finalHidden, routing: result.routing };
  };

  /** Logprobs (and entropy) of every response token, rounded to float32 as `referenceLogprobs` does. */
  const gather = (passes: readonly SequencePass[], temperature: number, entropy: boolean): BatchLogprobs => {
    const vocab = config.vocabSize;
    const sequenceOffsets = new Int32Array(passes.length + 1);
    passes.forEach((pass, index) => {
      sequenceOffsets[index + 1] =
        sequenceOffsets[index]! + pass.sequence.tokens.length - pass.sequence.promptLength;
    });
    const total = sequenceOffsets[passes.length]!;
    const logprobs = new Float32Array(total);
    const entropies = entropy ? new Float32Array(total) : undefined;
    passes.forEach((pass, index) => {
      const { tokens, promptLength, fed } = pass.sequence;
      let out = sequenceOffsets[index]!;
      for (let position = promptLength - 1; position < fed; position++, out++) {
        const row = pass.logits.subarray(position * vocab, (position + 1) * vocab);
        logprobs[out] = logSoftmax(row, temperature)[tokens[position + 1]!]!;
        if (entropies !== undefined) entropies[out] = softmaxEntropy(row, temperature);
      }
    });
    return { logprobs, sequenceOffsets, entropy: entropies };
  };

  /** dL/dW of the LM head in float64, `[vocab × hidden]` (see the file comment). */
  const headGradient = (
    passes: readonly SequencePass[],
    temperature: number,
    gradient: Float32Array,
    entropyGradient: Float32Array | undefined,
  ): Float64Array => {
    const vocab = config.vocabSize;
    const hidden = config.hiddenSize;
    const result = new Float64Array(vocab * hidden);
    const scaled = new Float64Array(vocab);
    const coefficients = new Float64Array(vocab);
    let token = 0;
    for (const pass of passes) {
      const { tokens, promptLength, fed } = pass.sequence;
      for (let position = promptLength - 1; position < fed; position++, token++) {
        const g = gradient[token]!;
        const e = entropyGradient?.[token] ?? 0;
        if (g === 0 && e === 0) continue;
        let max = Number.NEGATIVE_INFINITY;
        for (let j = 0; j < vocab; j++) {
          scaled[j] = pass.logits[position * vocab + j]! / temperature;
          max = Math.max(max, scaled[j]!);
        }
        let sum = 0;
        for (let j = 0; j < vocab; j++) sum += Math.exp(scaled[j]! - max);
        const logSumExp = max + Math.log(sum);
        let entropy = logSumExp;
        for (let j = 0; j < vocab; j++) entropy -= Math.exp(scaled[j]! - logSumExp) * scaled[j]!;
        const target = tokens[position + 1]!;
        for (let j = 0; j < vocab; j++) {
          const logProbability = scaled[j]! - logSumExp;
          const probability = Math.exp(logProbability);
          const logprobPart = g * ((j === target ? 1 : 0) - probability);
          const entropyPart = e === 0 ? 0 : -e * probability * (logProbability + entropy);
          coefficients[j] = (logprobPart + entropyPart) / temperature;
        }
        const h = pass.finalHidden.subarray(position * hidden, (position + 1) * hidden);
        for (let j = 0; j < vocab; j++) {
          const coefficient = coefficients[j]!;
          if (coefficient === 0) continue;
          const offset = j * hidden;
          for (let d = 0; d < hidden; d++) result[offset + d] = result[offset + d]! + coefficient * h[d]!;
        }
      }
    }
    return result;
  };

  const loadWeights = (named: NamedTensors) => {
    // Building the model validates names, dtypes and shapes (CHECKPOINT_INVALID otherwise).
    const next = createReferenceModel(config, named);
    weights = copyWeights(config, named);
    model = next;
  };

  return {
    specificationVersion: 'v1',
    backendName: 'reference',
    capabilities: CAPABILITIES,
    config,

    async logprobs(batch, logprobOptions): Promise<LogprobResult> {
      assertOpen();
      const temperature = checkTemperature(logprobOptions.temperature ?? 1);
      const sequences = prepareTrainingBatch(config, batch, logprobOptions, CAPABILITIES);
      const passes = sequences.map(forward);
      const { logprobs, sequenceOffsets, entropy } = gather(
        passes,
        temperature,
        logprobOptions.returnEntropy === true,
      );
      const free = logprobOptions.routing === 'free';
      return {
        logprobs,
        sequenceOffsets,
        ...(entropy === undefined ? {} : { entropy }),
        ...(free ? { routing: passes.map((pass) => pass.routing) } : {}),
      };
    },

    async trainStep(batch, objective: Objective, stepOptions): Promise<TrainStepResult> {
      assertOpen();
      if (config.tieWordEmbeddings) {
        throw new MoerlError(
          'UNSUPPORTED',
          'The reference trainer trains only the LM head and cannot train tied word embeddings',
          { details: { backend: 'reference', tieWordEmbeddings: true } },
        );
      }
      const temperature = checkTemperature(stepOptions.temperature ?? 1);
      const sequences = prepareTrainingBatch(config, batch, stepOptions, CAPABILITIES);
      const passes = sequences.map(forward);
      const current = gather(passes, temperature, objective.needsEntropy === true);
      const input: ObjectiveInput =
        current.entropy === undefined
          ? { logprobs: current.logprobs, sequenceOffsets: current.sequenceOffsets }
          : {
              logprobs: current.logprobs,
              sequenceOffsets: current.sequenceOffsets,
              entropy: current.entropy,
            };
      const { loss, gradient, entropyGradient, metrics } = objective.evaluate(input);
      const tokens = current.logprobs.length;
      for (const [name, values] of [
        ['gradient', gradient],
        ['entropyGradient', entropyGradient],
      ] as const) {
        if (values !== undefined && values.length !== tokens) {
          throw new MoerlError(
            'INVALID_ARGUMENT',
            `Objective ${objective.name} returned ${values.length} ${name} values for ${tokens} tokens`,
            { details: { objective: objective.name, expected: tokens, found: values.length } },
          );
        }
      }
      const skipped = (): TrainStepResult => ({ loss, gradNorm: Number.NaN, skipped: true, metrics });
      const finite = (values: Float32Array | undefined) =>
        values === undefined || values.every((value) => Number.isFinite(value));
      if (!Number.isFinite(loss) || !finite(gradient) || !finite(entropyGradient)) return skipped();

      const headGrad = headGradient(passes, temperature, gradient, entropyGradient);
      let squares = 0;
      for (const value of headGrad) squares += value * value;
      const gradNorm = Math.sqrt(squares);
      if (!Number.isFinite(gradNorm)) return skipped();
      const clip = maxGradNorm > 0 && gradNorm > maxGradNorm ? maxGradNorm / gradNorm : 1;
      const step = learningRate * clip;

      const head = weights.get('lm_head.weight')!;
      const current32 = head.data as Float32Array;
      const updated = new Float32Array(current32.length);
      for (let index = 0; index < updated.length; index++) {
        updated[index] = current32[index]! - step * headGrad[index]!;
      }
      // A diverging update (a weight overflowed to ±Infinity or became NaN) is skipped, not committed.
      if (!finite(updated)) return skipped();
      const next = new Map(weights);
      next.set('lm_head.weight', float32Tensor(head.shape, updated));
      model = createReferenceModel(config, next);
      weights = next;
      return { loss, gradNorm, skipped: false, metrics: { ...metrics, learningRate } };
    },

    async exportWeights() {
      assertOpen();
      return copyWeights(config, weights);
    },

    async loadWeights(named) {
      assertOpen();
      loadWeights(named);
    },

    async saveCheckpoint(directory) {
      assertOpen();
      try {
        await mkdir(directory, { recursive: true });
      } catch (error) {
        throw new MoerlError('IO_ERROR', `Could not create ${directory}: ${(error as Error).message}`, {
          cause: error,
          details: { path: directory },
        });
      }
      // Weights first: config.json appears last, so a directory with a config holds complete weights.
      await writeSafetensorsFile(join(directory, WEIGHTS_FILE), weights, { format: 'pt' });
      await writeHfConfigFile(join(directory, CONFIG_FILE), config);
    },

    async loadCheckpoint(directory) {
      assertOpen();
      const configPath = join(directory, CONFIG_FILE);
      let saved: ModelConfig;
      try {
        saved = await readHfConfigFile(configPath);
      } catch (error) {
        throw asCheckpointError(error, directory, configPath);
      }
      const differences = configDifferences(config, saved);
      if (differences.length > 0) {
        throw new MoerlError(
          'CHECKPOINT_INVALID',
          `The checkpoint in ${directory} is for another model:\n  - ${differences.join('\n  - ')}`,
          { details: { directory, differences } },
        );
      }
      const weightsPath = join(directory, WEIGHTS_FILE);
      let tensors: NamedTensors;
      try {
        tensors = (await readSafetensorsFile(weightsPath)).tensors;
      } catch (error) {
        throw asCheckpointError(error, directory, weightsPath);
      }
      loadWeights(tensors);
    },

    async dispose() {
      disposed = true;
    },
  };
}
