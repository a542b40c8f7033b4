import { float32Tensor, MoerlError, type NamedTensors } from '@moerl/core';
import * as tf from '@tensorflow/tfjs-core';
import { type ModelParameters, variableFrom } from '../model/parameters.js';
import { hostValues, tensorFilledBy } from '../runtime/host-tensor-memory.js';
import { adamwUpdate } from './adamw-kernel.js';

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
  /**
   * One update with gradients by parameter name, each multiplied by `gradientScale` first (the clip
   * factor; default 1); a missing gradient counts as zero.
   */
  apply(gradients: ReadonlyMap<string, tf.Tensor>, learningRate: number, gradientScale?: number): void;
  /** Moments as `m/<name>` and `v/<name>` F32 tensors. */
  exportState(): Promise<NamedTensors>;
  /** Throws `CHECKPOINT_INVALID` unless `state` holds F32 moments of every parameter's shape. */
  checkState(state: NamedTensors): void;
  loadState(state: NamedTensors | undefined, step: number): void;
  dispose(): void;
}

/**
 * Where the moments live and the update runs:
 * - `tensors`: tfjs variables and ops (a dozen ops per parameter); for backends whose memory is not the
 *   host's (tfjs-node-gpu, tfjs-node);
 * - `host`: moments in Float32Arrays, each parameter updated by one WebAssembly SIMD kernel call that
 *   reads the weights and gradient where the backend keeps them. For wasm and cpu, whose tensors live in
 *   host memory anyway: with many experts the per-op cost of the tensor path was a large share of a step
 *   (64 experts × 3 projections × 3 MoE layers = 576 matrices).
 */
export type OptimizerPlacement = 'tensors' | 'host';

export function createAdamW(
  parameters: ModelParameters,
  options: AdamWOptions,
  placement: OptimizerPlacement = 'tensors',
): AdamW {
  return placement === 'host' ? createHostAdamW(parameters, options) : createTensorAdamW(parameters, options);
}

/** Throws `CHECKPOINT_INVALID` unless `state` holds F32 `m/<name>` and `v/<name>` of every shape. */
function checkMomentState(shapes: ReadonlyMap<string, readonly number[]>, state: NamedTensors): void {
  for (const [name, shape] of shapes) {
    for (const kind of ['m', 'v'] as const) {
      const tensor = state.get(`${kind}/${name}`);
      if (tensor === undefined || tensor.dtype !== 'F32' || tensor.shape.join() !== shape.join()) {
        throw new MoerlError(
          'CHECKPOINT_INVALID',
          `Optimizer state ${kind}/${name}: expected F32 [${shape.join(', ')}], found ${tensor === undefined ? 'nothing' : `${tensor.dtype} [${tensor.shape.join(', ')}]`}`,
          { details: { field: `${kind}/${name}` } },
        );
      }
    }
  }
}

const shapesOf = (parameters: ModelParameters) =>
  new Map([...parameters.variables].map(([name, variable]) => [name, variable.shape]));

function createHostAdamW(parameters: ModelParameters, options: AdamWOptions): AdamW {
  const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
  for (const [name, variable] of parameters.variables) {
    moments.set(name, { m: new Float32Array(variable.size), v: new Float32Array(variable.size) });
  }
  const shapes = shapesOf(parameters);
  let step = 0;
  const { beta1, beta2, epsilon, weightDecay: decay } = options;
  return {
    get step() {
      return step;
    },
    apply(gradients, learningRate, gradientScale = 1) {
      step++;
      // Every operation rounds to float32 in the order the tensor path runs its ops, so both give the
      // same bits (checked by the tests): switching placement does not move a run's figures.
      const coefficients = {
        beta1,
        beta2,
        oneMinusBeta1: 1 - beta1,
        oneMinusBeta2: 1 - beta2,
        correction1: 1 - beta1 ** step,
        correction2: 1 - beta2 ** step,
        epsilon,
        learningRate,
        gradientScale,
      };
      for (const [name, variable] of parameters.variables) {
        const { m, v } = moments.get(name)!;
        const gradient = gradients.get(name);
        const weightDecay = decay > 0 && variable.rank >= 2 ? decay : 0;
        // Into a new tensor: the variable's own memory may hold what ops already read (see tensorFilledBy).
        const next = tensorFilledBy(variable.shape, (values) =>
          adamwUpdate(hostValues(variable), gradient && hostValues(gradient), m, v, values, {
            ...coefficients,
            weightDecay,
          }),
        );
        variable.assign(next);
        next.dispose();
      }
    },
    async exportState() {
      const named: NamedTensors = new Map();
      for (const [name, { m, v }] of moments) {
        const shape = shapes.get(name)!;
        named.set(`m/${name}`, float32Tensor(shape, Float32Array.from(m)));
        named.set(`v/${name}`, float32Tensor(shape, Float32Array.from(v)));
      }
      return named;
    },
    checkState: (state) => checkMomentState(shapes, state),
    loadState(state, savedStep) {
      if (state !== undefined) checkMomentState(shapes, state);
      for (const [name, { m, v }] of moments) {
        const saved = (kind: 'm' | 'v') => state?.get(`${kind}/${name}`)?.data as Float32Array | undefined;
        m.set(saved('m') ?? new Float32Array(m.length));
        v.set(saved('v') ?? new Float32Array(v.length));
      }
      step = savedStep;
    },
    dispose() {
      moments.clear();
    },
  };
}

function createTensorAdamW(parameters: ModelParameters, options: AdamWOptions): AdamW {
  const moments = new Map<string, { m: tf.Variable; v: tf.Variable }>();
  for (const [name, variable] of parameters.variables) {
    moments.set(name, {
      m: variableFrom(tf.zerosLike(variable), false),
      v: variableFrom(tf.zerosLike(variable), false),
    });
  }
  let step = 0;
  const { beta1, beta2, epsilon, weightDecay } = options;

  const shapes = shapesOf(parameters);
  const checkState = (state: NamedTensors): void => checkMomentState(shapes, state);

  return {
    get step() {
      return step;
    },
    apply(gradients, learningRate, gradientScale = 1) {
      step++;
      const correction1 = 1 - beta1 ** step;
      const correction2 = 1 - beta2 ** step;
      tf.tidy(() => {
        for (const [name, variable] of parameters.variables) {
          // A parameter without a gradient (an expert no token was routed to) has gradient zero: its
          // moments still decay and its momentum still moves it, as in PyTorch's AdamW with zero grads.
          const raw = gradients.get(name);
          const gradient =
            raw === undefined
              ? tf.zerosLike(variable)
              : gradientScale === 1
                ? raw
                : tf.mul(raw, gradientScale);
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
