import { createRandom, float32Tensor } from '@moerl/core';
import { createRandomWeights, tinyMoeConfig } from '@moerl/testkit';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createParameters, disposeParameters, readParameters } from '../model/parameters.js';
import { activateTfjsBackend } from '../runtime/tfjs-runtime.js';
import { ADAMW_DEFAULTS, createAdamW } from './adamw.js';
import { globalGradientNorm } from './gradient-norm.js';

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

describe.each(['tensors', 'host'] as const)('createAdamW, %s', (placement) => {
  it('matches a per-element float64 AdamW over three steps, decaying matrices only', async () => {
    const config = tinyMoeConfig;
    const weights = createRandomWeights(config, 2);
    const parameters = createParameters(config, weights);
    const options = { beta1: 0.8, beta2: 0.95, epsilon: 1e-3, weightDecay: 0.1 };
    const optimizer = createAdamW(parameters, options, placement);
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
          // Applied at half scale: the optimizer's own gradientScale must double them back.
          gradients.set(
            name,
            tf.tensor(
              Float32Array.from(values, (x) => x / 2),
              variable.shape,
            ),
          );
        }
        optimizer.apply(gradients, 0.01, 2);
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

  it('exports its moments and resumes from them as if never stopped', async () => {
    const config = tinyMoeConfig;
    const weights = createRandomWeights(config, 4);
    const name = 'model.layers.0.self_attn.q_proj.weight';
    const random = createRandom(5);
    const size = weights.get(name)!.data.length;
    const steps = [0, 1, 2].map(() => Float32Array.from({ length: size }, () => random.nextNormal()));
    const run = async (stopAfter: number | undefined, keepMoments = true) => {
      let parameters = createParameters(config, weights);
      let optimizer = createAdamW(parameters, ADAMW_DEFAULTS, placement);
      for (const [index, values] of steps.entries()) {
        if (index === stopAfter) {
          const state = await optimizer.exportState();
          const saved = await readParameters(parameters);
          optimizer.dispose();
          disposeParameters(parameters);
          parameters = createParameters(config, saved);
          optimizer = createAdamW(parameters, ADAMW_DEFAULTS, placement);
          optimizer.loadState(keepMoments ? state : undefined, index);
        }
        const gradient = tf.tensor(values, parameters.get(name).shape);
        optimizer.apply(new Map([[name, gradient]]), 0.01);
        gradient.dispose();
      }
      const after = (await readParameters(parameters)).get(name)!.data as Float32Array;
      optimizer.dispose();
      disposeParameters(parameters);
      return after;
    };
    const straight = await run(undefined);
    const resumed = await run(2);
    expect([...resumed]).toEqual([...straight]);
    // Resuming without the moments gives another answer, so the comparison above can fail.
    expect([...(await run(2, false))]).not.toEqual([...straight]);
  });

  it('refuses optimizer state of the wrong shape', async () => {
    const parameters = createParameters(tinyMoeConfig, createRandomWeights(tinyMoeConfig, 4));
    const optimizer = createAdamW(parameters, ADAMW_DEFAULTS, placement);
    try {
      const state = await optimizer.exportState();
      optimizer.loadState(state, 1);
      state.set('m/model.norm.weight', float32Tensor([3], new Float32Array(3)));
      expect(() => optimizer.loadState(state, 1)).toThrow(
        /Optimizer state m\/model\.norm\.weight: expected F32/,
      );
    } finally {
      optimizer.dispose();
      disposeParameters(parameters);
    }
  });
});

describe.each(['tfjs-wasm', 'tfjs-cpu'] as const)('host and tensor placements on %s', (backend) => {
  beforeAll(async () => {
    await activateTfjsBackend(backend);
  });

  it('compute the same global gradient norm (bit for bit on wasm), close to a float64 one', () => {
    const random = createRandom(6);
    const arrays = [7, 3000, 1].map((size) => Float32Array.from({ length: size }, () => random.nextNormal()));
    const gradients = new Map(arrays.map((values, index) => [`g${index}`, tf.tensor(values)]));
    let sum = 0;
    for (const values of arrays) for (const x of values) sum += x * x;
    const host = globalGradientNorm(gradients, 'host');
    // tfjs-cpu's sum adds in float64, tfjs-wasm's (like the host kernel) in float32.
    if (backend === 'tfjs-wasm') expect(host).toBe(globalGradientNorm(gradients, 'tensors'));
    else expect(host).toBeCloseTo(globalGradientNorm(gradients, 'tensors'), 4);
    expect(host).toBeCloseTo(Math.sqrt(sum), 2);
    expect(globalGradientNorm(new Map(), 'host')).toBe(0);
    for (const gradient of gradients.values()) gradient.dispose();
  });

  it('update the weights to the same bits over several clipped, decayed steps', async () => {
    const config = tinyMoeConfig;
    const weights = createRandomWeights(config, 8);
    const random = createRandom(10);
    const names = [...weights.keys()];
    const steps = [0, 1, 2, 3].map(() =>
      names.map((name) =>
        Float32Array.from({ length: weights.get(name)!.data.length }, () => random.nextNormal()),
      ),
    );
    const finalWeights = async (placement: 'tensors' | 'host') => {
      const parameters = createParameters(config, weights);
      const optimizer = createAdamW(parameters, { ...ADAMW_DEFAULTS, weightDecay: 0.01 }, placement);
      for (const [step, values] of steps.entries()) {
        // One parameter goes without a gradient at step 2 (an expert no token chose).
        const gradients = new Map(
          names
            .map((name, index) => [name, values[index]!] as const)
            .filter(([name]) => step !== 2 || !name.endsWith('experts.1.up_proj.weight'))
            .map(([name, gradient]) => [name, tf.tensor(gradient, parameters.get(name).shape)]),
        );
        const tensorsBefore = tf.memory().numTensors;
        optimizer.apply(gradients, 3e-3, step === 0 ? 1 : 0.37 + step / 10);
        expect(tf.memory().numTensors).toBe(tensorsBefore);
        for (const gradient of gradients.values()) gradient.dispose();
      }
      const after = await readParameters(parameters);
      optimizer.dispose();
      disposeParameters(parameters);
      return after;
    };
    const tensors = await finalWeights('tensors');
    const host = await finalWeights('host');
    for (const name of names) {
      expect([...(host.get(name)!.data as Float32Array)], name).toEqual([
        ...(tensors.get(name)!.data as Float32Array),
      ]);
    }
  });
});
