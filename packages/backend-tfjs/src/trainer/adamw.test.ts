import { createRandom } from '@moerl/core';
import { createRandomWeights, tinyMoeConfig } from '@moerl/testkit';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createParameters, disposeParameters, readParameters } from '../model/parameters.js';
import { activateTfjsBackend } from '../runtime/tfjs-runtime.js';
import { createAdamW } from './adamw.js';

beforeAll(async () => {
  await activateTfjsBackend('tfjs-wasm');
});

/** AdamW written out per element in float64, the textbook way. */
function naiveAdamW(
  weights: Float64Array,
  gradients: Float64Array[],
  options: { lr: number; beta1: number; beta2: number; epsilon: number; weightDecay: number },
): Float64Array {
  const p = Float64Array.from(weights);
  const m = new Float64Array(p.length);
  const v = new Float64Array(p.length);
  gradients.forEach((g, index) => {
    const t = index + 1;
    for (let i = 0; i < p.length; i++) {
      m[i] = options.beta1 * m[i]! + (1 - options.beta1) * g[i]!;
      v[i] = options.beta2 * v[i]! + (1 - options.beta2) * g[i]! * g[i]!;
      const mHat = m[i]! / (1 - options.beta1 ** t);
      const vHat = v[i]! / (1 - options.beta2 ** t);
      p[i] = p[i]! - options.lr * (mHat / (Math.sqrt(vHat) + options.epsilon) + options.weightDecay * p[i]!);
    }
  });
  return p;
}

describe('createAdamW', () => {
  it('matches a per-element float64 AdamW over three steps, decaying matrices only', async () => {
    const config = tinyMoeConfig;
    const weights = createRandomWeights(config, 2);
    const parameters = createParameters(config, weights);
    const options = { beta1: 0.8, beta2: 0.95, epsilon: 1e-3, weightDecay: 0.1 };
    const optimizer = createAdamW(parameters, options);
    const random = createRandom(9);
    const names = ['model.layers.0.self_attn.q_proj.weight', 'model.norm.weight'];
    const history = new Map(names.map((name) => [name, [] as Float64Array[]]));
    try {
      for (let step = 0; step < 3; step++) {
        const gradients = new Map<string, tf.Tensor>();
        for (const name of names) {
          const variable = parameters.get(name);
          const values = Float64Array.from({ length: variable.size }, () => random.nextNormal());
          history.get(name)!.push(values);
          gradients.set(name, tf.tensor(Float32Array.from(values), variable.shape));
        }
        optimizer.apply(gradients, 0.01);
        for (const gradient of gradients.values()) gradient.dispose();
      }
      expect(optimizer.step).toBe(3);
      const after = await readParameters(parameters);
      for (const name of names) {
        const decay = name.endsWith('norm.weight') ? 0 : options.weightDecay;
        const expected = naiveAdamW(
          Float64Array.from(weights.get(name)!.data as Float32Array),
          history.get(name)!,
          { lr: 0.01, ...options, weightDecay: decay },
        );
        const actual = after.get(name)!.data as Float32Array;
        for (let i = 0; i < expected.length; i++) expect(actual[i]).toBeCloseTo(expected[i]!, 5);
      }
      // A parameter without a gradient counts as gradient zero: only the decoupled weight decay moves it.
      const untouched = 'model.layers.1.mlp.gate.weight';
      const initial = Float64Array.from(weights.get(untouched)!.data as Float32Array);
      const zeros = [0, 1, 2].map(() => new Float64Array(initial.length));
      const expected = naiveAdamW(initial, zeros, { lr: 0.01, ...options });
      const actual = after.get(untouched)!.data as Float32Array;
      for (let i = 0; i < expected.length; i++) expect(actual[i]).toBeCloseTo(expected[i]!, 6);
      expect(actual[0]).not.toBe(initial[0]);
    } finally {
      optimizer.dispose();
      disposeParameters(parameters);
    }
  });
});
