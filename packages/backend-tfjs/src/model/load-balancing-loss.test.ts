import type { RoutingRecord } from '@moerl/core';
import { createRandomWeights, createReferenceModel, smallMoeConfig, tinyTokens } from '@moerl/testkit';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { activateTfjsBackend } from '../runtime/tfjs-runtime.js';
import { forwardHidden } from './forward.js';
import { expertLoadImbalance, loadBalancingLoss } from './load-balancing-loss.js';
import { createParameters, disposeParameters, type ModelParameters } from './parameters.js';

beforeAll(async () => {
  await activateTfjsBackend('tfjs-wasm');
});

const config = smallMoeConfig;
const weights = createRandomWeights(config, 5);
const long = tinyTokens.slice(0, 12);
const short = tinyTokens.slice(2, 7);
const length = long.length;
const tokens = new Int32Array(2 * length);
tokens.set(long, 0);
tokens.set(short, length);
const batch = { size: 2, length, tokens, fed: [long.length, short.length] };

/**
 * HF's load_balancing_loss_func written out in float64 over the reference model's router probabilities
 * and top-k choices (rows of every MoE layer concatenated, padding excluded):
 * E · Σ_e mean_rows(onehot_k(e) summed over k) · mean_rows(p_e).
 */
function hfLoadBalancingLoss(): number {
  const reference = createReferenceModel(config, weights);
  const E = config.numExperts;
  const counts = new Float64Array(E);
  const probabilitySums = new Float64Array(E);
  let rows = 0;
  for (const sequence of [long, short]) {
    const result = reference.forward(sequence);
    const { positions, moeLayers, topK } = result.routing;
    for (let position = 0; position < positions; position++) {
      for (let layer = 0; layer < moeLayers; layer++) {
        rows++;
        for (let k = 0; k < topK; k++)
          counts[result.routing.experts[(position * moeLayers + layer) * topK + k]!]! += 1;
        for (let e = 0; e < E; e++)
          probabilitySums[e]! += result.routerProbabilities[(position * moeLayers + layer) * E + e]!;
      }
    }
  }
  let loss = 0;
  for (let e = 0; e < E; e++) loss += (counts[e]! / rows) * (probabilitySums[e]! / rows);
  return loss * E;
}

function auxLoss(parameters: ModelParameters, replay?: RoutingRecord[]) {
  let result: { value: number; imbalance: number[]; routing: RoutingRecord[] } | undefined;
  tf.tidy(() => {
    const forward = forwardHidden(parameters, batch, {
      routerStats: true,
      ...(replay === undefined ? {} : { replay }),
    });
    const stats = forward.routerStats!;
    result = {
      value: loadBalancingLoss(stats, config.numExperts).dataSync()[0]!,
      imbalance: expertLoadImbalance(stats, config.numExperts, config.topK),
      routing: forward.routing,
    };
  });
  return result!;
}

describe('load-balancing loss', () => {
  it("equals Hugging Face's definition computed independently from the reference model", () => {
    const parameters = createParameters(config, weights);
    try {
      const { value, imbalance } = auxLoss(parameters);
      const expected = hfLoadBalancingLoss();
      expect(Math.abs(value - expected)).toBeLessThan(1e-5);
      // A random router is not balanced: the loss exceeds topK (its value at perfect balance).
      expect(value).toBeGreaterThan(config.topK);
      expect(imbalance).toHaveLength(3);
      for (const load of imbalance) expect(load).toBeGreaterThanOrEqual(1);
    } finally {
      disposeParameters(parameters);
    }
  });

  it('its gradient on the router gate matches finite differences (routing held fixed by replay)', () => {
    const parameters = createParameters(config, weights);
    try {
      const { routing } = auxLoss(parameters);
      const gateName = 'model.layers.1.mlp.gate.weight';
      const gate = parameters.variables.get(gateName)!;
      const { grads } = tf.variableGrads(
        () =>
          loadBalancingLoss(
            forwardHidden(parameters, batch, { routerStats: true, replay: routing }).routerStats!,
            config.numExperts,
          ),
        [gate],
      );
      const analytic = Float32Array.from(grads[gate.name]!.dataSync());
      tf.dispose(grads);
      const original = Float32Array.from(gate.dataSync());
      const step = 1e-2;
      let checked = 0;
      for (const index of [0, 5, 17, 40, original.length - 1]) {
        const at = (delta: number) => {
          const values = original.slice();
          values[index]! += delta;
          gate.assign(tf.tensor(values, gate.shape));
          return auxLoss(parameters, routing).value;
        };
        const numeric = (at(step) - at(-step)) / (2 * step);
        expect(Math.abs(numeric - analytic[index]!)).toBeLessThan(2e-3 + 0.02 * Math.abs(numeric));
        checked += Math.abs(analytic[index]!) > 1e-4 ? 1 : 0;
      }
      gate.assign(tf.tensor(original, gate.shape));
      expect(checked).toBeGreaterThan(0);
    } finally {
      disposeParameters(parameters);
    }
  });
});
