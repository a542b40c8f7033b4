import {
  createRandom,
  float32Tensor,
  type ModelConfig,
  type NamedTensors,
  prepareTrainingBatch,
  type RoutingRecord,
  sliceRoutingRecord,
} from '@moerl/core';
import {
  createRandomWeights,
  createReferenceModel,
  referenceLogprobs,
  tinyBiasedTiedConfig,
  tinyDenseAndSparseConfig,
  tinyMoeConfig,
} from '@moerl/testkit';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ExpertComputation } from '../model/forward.js';
import { createParameters, disposeParameters } from '../model/parameters.js';
import { activateTfjsBackend } from '../runtime/tfjs-runtime.js';
import { padSequences } from './prepare-batch.js';
import { surrogateGradients } from './surrogate-gradients.js';

beforeAll(async () => {
  await activateTfjsBackend('tfjs-wasm');
});

const sequences = [
  { promptIds: Int32Array.of(1, 7, 3), responseIds: Int32Array.of(19, 30, 2, 2) },
  { promptIds: Int32Array.of(11, 25, 0, 31, 8), responseIds: Int32Array.of(14, 5) },
];
const TEMPERATURE = 0.8;

/** Σ_t g_t · logprob_t (+ Σ_t e_t · entropy_t) under the reference model with the routing held fixed (float64 sum). */
function referenceSurrogate(
  config: ModelConfig,
  weights: NamedTensors,
  routing: readonly RoutingRecord[],
  coefficients: Float32Array,
  entropyCoefficients?: Float32Array,
): number {
  const model = createReferenceModel(config, weights);
  let total = 0;
  let token = 0;
  sequences.forEach((sequence, index) => {
    const tokens = [...sequence.promptIds, ...sequence.responseIds];
    const { logprobs, entropy } = referenceLogprobs(model, tokens, {
      temperature: TEMPERATURE,
      routing: routing[index]!,
      entropy: true,
    });
    for (let position = sequence.promptIds.length - 1; position < logprobs.length; position++, token++) {
      total += coefficients[token]! * logprobs[position]!;
      total += (entropyCoefficients?.[token] ?? 0) * entropy![position]!;
    }
  });
  return total;
}

function withDirection(
  weights: NamedTensors,
  name: string,
  direction: Float32Array,
  step: number,
): NamedTensors {
  const copy = new Map(weights);
  const tensor = weights.get(name)!;
  const data = Float32Array.from(
    tensor.data as Float32Array,
    (value, index) => value + step * direction[index]!,
  );
  copy.set(name, float32Tensor(tensor.shape, data));
  return copy;
}

function analyticGradients(
  config: ModelConfig,
  weights: NamedTensors,
  routing: readonly RoutingRecord[],
  coefficients: Float32Array,
  experts: ExpertComputation,
  entropyCoefficients?: Float32Array,
): Map<string, Float32Array> {
  const parameters = createParameters(config, weights);
  try {
    const batch = {
      sequences: sequences.map((sequence, index) => ({ ...sequence, routing: routing[index]! })),
    };
    const padded = padSequences(prepareTrainingBatch(config, batch, 'replay'));
    const gradients = surrogateGradients(
      parameters,
      padded,
      {
        replay: padded.replay,
        temperature: TEMPERATURE,
        withEntropy: entropyCoefficients !== undefined,
        experts,
      },
      () => ({ gradient: coefficients, entropyGradient: entropyCoefficients }),
    );
    const host = new Map<string, Float32Array>();
    for (const [name, gradient] of gradients) {
      host.set(name, Float32Array.from(gradient.dataSync()));
      gradient.dispose();
    }
    return host;
  } finally {
    disposeParameters(parameters);
  }
}

function freeRouting(config: ModelConfig, weights: NamedTensors): RoutingRecord[] {
  const model = createReferenceModel(config, weights);
  return sequences.map((sequence) => {
    const tokens = [...sequence.promptIds, ...sequence.responseIds];
    return sliceRoutingRecord(model.forward(tokens).routing, 0, tokens.length - 1);
  });
}

const cases: Array<{ config: ModelConfig; label: string; names: string[] }> = [
  {
    config: tinyMoeConfig,
    label: 'tinyMoe',
    names: [
      'model.embed_tokens.weight',
      'model.layers.0.self_attn.q_proj.weight',
      'model.layers.0.self_attn.k_proj.weight',
      'model.layers.0.self_attn.v_proj.weight',
      'model.layers.1.self_attn.o_proj.weight',
      'model.layers.0.self_attn.q_norm.weight',
      'model.layers.0.input_layernorm.weight',
      'model.layers.0.mlp.gate.weight',
      'model.layers.1.mlp.gate.weight',
      'model.layers.0.mlp.experts.1.gate_proj.weight',
      'model.layers.1.mlp.experts.2.up_proj.weight',
      'model.layers.1.mlp.experts.3.down_proj.weight',
      'model.norm.weight',
      'lm_head.weight',
    ],
  },
  {
    config: tinyDenseAndSparseConfig,
    label: 'denseAndSparse (normTopKProb false)',
    names: [
      'model.layers.0.mlp.gate_proj.weight',
      'model.layers.1.mlp.gate.weight',
      'model.layers.5.mlp.gate.weight',
      'model.layers.5.mlp.experts.0.down_proj.weight',
    ],
  },
  {
    config: tinyBiasedTiedConfig,
    label: 'biasedTied (tied head, biases, top-1)',
    names: [
      'model.embed_tokens.weight',
      'model.layers.0.self_attn.q_proj.bias',
      'model.layers.1.self_attn.o_proj.bias',
      'model.layers.0.mlp.gate.weight',
    ],
  },
];

describe('surrogateGradients match central finite differences of the reference', () => {
  for (const { config, label, names } of cases) {
    it(label, () => {
      const weights = createRandomWeights(config, 21);
      // Replay a fixed routing so the loss is smooth in every weight (top-k would jump otherwise).
      const routing = freeRouting(config, weights);
      const random = createRandom(3);
      const tokenCount = sequences.reduce((sum, s) => sum + s.responseIds.length, 0);
      const coefficients = Float32Array.from({ length: tokenCount }, () => random.nextNormal());
      const gradients = analyticGradients(config, weights, routing, coefficients, 'gathered');
      const epsilon = 1e-2;
      for (const name of names) {
        const size = (weights.get(name)!.data as Float32Array).length;
        const direction = Float32Array.from({ length: size }, () => random.nextNormal());
        const norm = Math.hypot(...direction);
        for (let index = 0; index < size; index++) direction[index] = direction[index]! / norm;
        const plus = referenceSurrogate(
          config,
          withDirection(weights, name, direction, epsilon),
          routing,
          coefficients,
        );
        const minus = referenceSurrogate(
          config,
          withDirection(weights, name, direction, -epsilon),
          routing,
          coefficients,
        );
        const numeric = (plus - minus) / (2 * epsilon);
        const gradient = gradients.get(name);
        expect(gradient, name).toBeDefined();
        let analytic = 0;
        for (let index = 0; index < size; index++) analytic += gradient![index]! * direction[index]!;
        expect(
          Math.abs(analytic - numeric),
          `${name}: analytic ${analytic}, numeric ${numeric}`,
        ).toBeLessThanOrEqual(2e-3 + 2e-2 * Math.abs(numeric));
      }
    });
  }

  it('the entropy term: d(Σ e·entropy)/dW matches finite differences too', () => {
    const config = tinyMoeConfig;
    const weights = createRandomWeights(config, 8);
    const routing = freeRouting(config, weights);
    const random = createRandom(4);
    const zero = new Float32Array(6);
    const entropyCoefficients = Float32Array.from({ length: 6 }, () => random.nextNormal());
    const gradients = analyticGradients(config, weights, routing, zero, 'gathered', entropyCoefficients);
    for (const name of [
      'lm_head.weight',
      'model.layers.1.mlp.gate.weight',
      'model.layers.0.self_attn.v_proj.weight',
    ]) {
      const size = (weights.get(name)!.data as Float32Array).length;
      const direction = Float32Array.from({ length: size }, () => random.nextNormal() / Math.sqrt(size));
      const at = (step: number) =>
        referenceSurrogate(
          config,
          withDirection(weights, name, direction, step),
          routing,
          zero,
          entropyCoefficients,
        );
      const numeric = (at(1e-2) - at(-1e-2)) / 2e-2;
      let analytic = 0;
      const gradient = gradients.get(name)!;
      for (let index = 0; index < size; index++) analytic += gradient[index]! * direction[index]!;
      expect(
        Math.abs(analytic - numeric),
        `${name}: analytic ${analytic}, numeric ${numeric}`,
      ).toBeLessThanOrEqual(2e-3 + 2e-2 * Math.abs(numeric));
    }
  });

  it('gathered and dense-masked experts give the same gradients', () => {
    const weights = createRandomWeights(tinyMoeConfig, 5);
    const routing = freeRouting(tinyMoeConfig, weights);
    const coefficients = new Float32Array(6).fill(-1 / 6);
    const gathered = analyticGradients(tinyMoeConfig, weights, routing, coefficients, 'gathered');
    const dense = analyticGradients(tinyMoeConfig, weights, routing, coefficients, 'dense');
    for (const [name, values] of dense) {
      const other = gathered.get(name) ?? new Float32Array(values.length);
      let worst = 0;
      for (let index = 0; index < values.length; index++)
        worst = Math.max(worst, Math.abs(values[index]! - other[index]!));
      expect(worst, name).toBeLessThanOrEqual(1e-5);
    }
  });

  it('the router gets a non-zero gradient when a foreign routing is replayed (R3)', () => {
    const weights = createRandomWeights(tinyMoeConfig, 5);
    const foreign = freeRouting(tinyMoeConfig, createRandomWeights(tinyMoeConfig, 77));
    const gradients = analyticGradients(
      tinyMoeConfig,
      weights,
      foreign,
      new Float32Array(6).fill(-1 / 6),
      'gathered',
    );
    for (const layer of [0, 1]) {
      const router = gradients.get(`model.layers.${layer}.mlp.gate.weight`)!;
      expect(Math.hypot(...router), `layer ${layer}`).toBeGreaterThan(1e-4);
    }
    expect(tf.memory().numTensors).toBeLessThan(10_000);
  });
});
