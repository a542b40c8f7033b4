import { float32Tensor, MoerlError, type NamedTensors } from '@moerl/core';
import * as tf from '@tensorflow/tfjs-core';
import { type ModelParameters, variableFrom } from '../model/parameters.js';

export interface AdamWOptions {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  /** Decoupled weight decay, applied to matrices only (norm weights and biases are not decayed). */
  readonly weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 };

/**
 * AdamW (Loshchilov & Hutter) over a model's parameters, with bias correction:
 * `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `p ← p − lr·(m̂ / (√v̂ + ε) + λ·p)`.
 */
export interface AdamW {
  /** Updates applied so far. */
  readonly step: number;
  /** One update with gradients (already clipped) by parameter name; a missing gradient counts as zero. */
  apply(gradients: ReadonlyMap<string, tf.Tensor>, learningRate: number): void;
  /** Moments as `m/<name>` and `v/<name>` F32 tensors. */
  exportState(): Promise<NamedTensors>;
  /** Throws `CHECKPOINT_INVALID` unless `state` holds F32 moments of every parameter's shape. */
  checkState(state: NamedTensors): void;
  loadState(state: NamedTensors | undefined, step: number): void;
  dispose(): void;
}

export function createAdamW(parameters: ModelParameters, options: AdamWOptions): AdamW {
  const moments = new Map<string, { m: tf.Variable; v: tf.Variable }>();
  for (const [name, variable] of parameters.variables) {
    moments.set(name, {
      m: variableFrom(tf.zerosLike(variable), false),
      v: variableFrom(tf.zerosLike(variable), false),
    });
  }
  let step = 0;
  const { beta1, beta2, epsilon, weightDecay } = options;

  const checkState = (state: NamedTensors): void => {
    for (const [name, { m, v }] of moments) {
      for (const [kind, variable] of [
        ['m', m],
        ['v', v],
      ] as const) {
        const tensor = state.get(`${kind}/${name}`);
        if (tensor === undefined || tensor.dtype !== 'F32' || tensor.shape.join() !== variable.shape.join()) {
          throw new MoerlError(
            'CHECKPOINT_INVALID',
            `Optimizer state ${kind}/${name}: expected F32 [${variable.shape.join(', ')}], found ${tensor === undefined ? 'nothing' : `${tensor.dtype} [${tensor.shape.join(', ')}]`}`,
            { details: { field: `${kind}/${name}` } },
          );
        }
      }
    }
  };

  return {
    get step() {
      return step;
    },
    apply(gradients, learningRate) {
      step++;
      const correction1 = 1 - beta1 ** step;
      const correction2 = 1 - beta2 ** step;
      tf.tidy(() => {
        for (const [name, variable] of parameters.variables) {
          // A parameter without a gradient (an expert no token was routed to) has gradient zero: its
          // moments still decay and its momentum still moves it, as in PyTorch's AdamW with zero grads.
          const gradient = gradients.get(name) ?? tf.zerosLike(variable);
          const state = moments.get(name)!;
          const m = tf.add(tf.mul(state.m, beta1), tf.mul(gradient, 1 - beta1));
          const v = tf.add(tf.mul(state.v, beta2), tf.mul(tf.square(gradient), 1 - beta2));
          state.m.assign(m);
          state.v.assign(v);
          let update = tf.div(tf.div(m, correction1), tf.add(tf.sqrt(tf.div(v, correction2)), epsilon));
          if (weightDecay > 0 && variable.rank >= 2) update = tf.add(update, tf.mul(variable, weightDecay));
          variable.assign(tf.sub(variable, tf.mul(update, learningRate)));
        }
      });
    },
    async exportState() {
      const named: NamedTensors = new Map();
      for (const [name, state] of moments) {
        named.set(`m/${name}`, float32Tensor(state.m.shape, Float32Array.from(await state.m.data())));
        named.set(`v/${name}`, float32Tensor(state.v.shape, Float32Array.from(await state.v.data())));
      }
      return named;
    },
    checkState,
    loadState(state, savedStep) {
      if (state !== undefined) checkState(state);
      for (const [name, { m, v }] of moments) {
        tf.tidy(() => {
          const saved = (kind: 'm' | 'v', variable: tf.Variable) => {
            const tensor = state?.get(`${kind}/${name}`);
            return tensor === undefined
              ? tf.zerosLike(variable)
              : tf.tensor(tensor.data as Float32Array, variable.shape);
          };
          m.assign(saved('m', m));
          v.assign(saved('v', v));
        });
      }
      step = savedStep;
    },
    dispose() {
      for (const { m, v } of moments.values()) {
        m.dispose();
        v.dispose();
      }
    },
  };
}
