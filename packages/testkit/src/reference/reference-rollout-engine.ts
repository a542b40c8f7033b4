import {
  type CreateEngineOptions,
  createRandom,
  type FinishReason,
  type GenerateRequest,
  type HostTensor,
  MoerlError,
  type NamedTensors,
  type RolloutEngine,
  type RolloutEngineStats,
  roundToBfloat16,
  type SamplingParams,
  sampleToken,
  type Trajectory,
} from '@moerl/core';
import { createReferenceModel, type ReferenceModel } from './reference-model.js';

function roundWeights(weights: NamedTensors): NamedTensors {
  const rounded: NamedTensors = new Map();
  for (const [name, tensor] of weights) {
    rounded.set(
      name,
      tensor.dtype === 'F32' ? ({ ...tensor, data: roundToBfloat16(tensor.data) } as HostTensor) : tensor,
    );
  }
  return rounded;
}

/** The sampler fork of a request: its `seedFork` when set, else its position in the call. */
function seedForkOf(request: GenerateRequest, index: number): number {
  const { seedFork } = request;
  if (seedFork === undefined) return index;
  if (!Number.isSafeInteger(seedFork) || seedFork < 0) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `Request ${request.id}: seedFork must be a non-negative safe integer, found ${String(seedFork)}`,
      { details: { request: index, field: 'seedFork', found: seedFork } },
    );
  }
  return seedFork;
}

/**
 * A RolloutEngine over the reference forward pass: it recomputes the whole sequence for every new token (no
 * KV cache), so it is slow and simple. It serves as the oracle engine in tests, as the engine of examples,
 * and as proof that the conformance suite accepts a correct engine. `bf16` rounds the weights to bfloat16
 * and computes in float32, which reproduces the training-inference mismatch R3 exists to fix.
 */
export function createReferenceRolloutEngine(options: CreateEngineOptions): RolloutEngine {
  const precision = options.precision ?? 'fp32';
  if (precision === 'fp16') {
    throw new MoerlError(
      'UNSUPPORTED',
      'The reference engine computes fp32 or bf16-rounded weights, not fp16',
      {
        details: { precision, supported: ['fp32', 'bf16'] },
      },
    );
  }
  const build = (weights: NamedTensors): ReferenceModel =>
    createReferenceModel(options.config, precision === 'bf16' ? roundWeights(weights) : weights);
  let model = build(options.weights);
  let weightVersion = options.weightVersion ?? 0;
  const stats = { requests: 0, promptTokens: 0, generatedTokens: 0, generateSeconds: 0 };
  let disposed = false;

  const generateOne = (request: GenerateRequest, params: SamplingParams, fork: number): Trajectory => {
    const random = createRandom(params.seed).fork(fork);
    const tokens = [...request.promptIds];
    const logprobs: number[] = [];
    let finishReason: FinishReason = 'length';
    for (let step = 0; step < params.maxNewTokens; step++) {
      const { logits } = model.forward(tokens);
      const vocab = options.config.vocabSize;
      const row = logits.subarray((tokens.length - 1) * vocab, tokens.length * vocab);
      const { token, logprob } = sampleToken(row, params, random);
      tokens.push(token);
      logprobs.push(logprob);
      if (params.stopTokenIds.includes(token)) {
        finishReason = 'stop';
        break;
      }
    }
    // Routing of every fed position: all tokens but the last, which was sampled and never fed forward.
    const routing = model.forward(tokens.slice(0, -1)).routing;
    return {
      id: request.id,
      groupId: request.groupId,
      promptIds: Int32Array.from(request.promptIds),
      responseIds: Int32Array.from(tokens.slice(request.promptIds.length)),
      engineLogprobs: Float32Array.from(logprobs),
      routing: { ...routing, weightVersion },
      finishReason,
      weightVersion,
    };
  };

  const assertOpen = () => {
    if (disposed) throw new MoerlError('INVALID_ARGUMENT', 'The reference engine was disposed');
  };

  return {
    specificationVersion: 'v1',
    backendName: 'reference',
    capabilities: {
      recordRouting: true,
      prefixCache: false,
      batchedGeneration: false,
      precisions: ['fp32', 'bf16'],
      seedFork: true,
    },
    config: options.config,
    async generate(requests, samplingParams) {
      assertOpen();
      const started = performance.now();
      const trajectories = requests.map((request, index) => {
        if (request.promptIds.length === 0) {
          throw new MoerlError('INVALID_ARGUMENT', `Request ${request.id} has an empty prompt`);
        }
        return generateOne(
          request,
          { ...samplingParams, ...request.samplingParams },
          seedForkOf(request, index),
        );
      });
      stats.requests += requests.length;
      for (const trajectory of trajectories) {
        stats.promptTokens += trajectory.promptIds.length;
        stats.generatedTokens += trajectory.responseIds.length;
      }
      stats.generateSeconds += (performance.now() - started) / 1000;
      return trajectories;
    },
    async updateWeights(weights, version) {
      assertOpen();
      model = build(weights);
      weightVersion = version;
    },
    stats(): RolloutEngineStats {
      return { ...stats, weightVersion, cachedPromptTokens: 0 };
    },
    async dispose() {
      disposed = true;
    },
  };
}
