import {
  expectedWeights,
  float32Tensor,
  type ModelConfig,
  type NamedTensors,
  toFloat32,
  validateWeights,
} from '@moerl/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * The trainable weights of one model, as tfjs variables under their Hugging Face names (the names of
 * `expectedWeights(config)`). With tied embeddings there is no `lm_head.weight`: the head is the embedding.
 */
export interface ModelParameters {
  readonly config: ModelConfig;
  readonly variables: ReadonlyMap<string, tf.Variable>;
  get(name: string): tf.Variable;
}

/** Creates variables from checked weights (F32, F16 or BF16; `CHECKPOINT_INVALID` otherwise). */
export function createParameters(config: ModelConfig, weights: NamedTensors): ModelParameters {
  validateWeights(config, weights, { subject: 'Trainer weights' });
  const variables = new Map<string, tf.Variable>();
  for (const spec of expectedWeights(config)) {
    const values = toFloat32(weights.get(spec.name)!);
    // Unnamed: tfjs variable names are global, and several trainers may hold the same weight names.
    variables.set(spec.name, variableFrom(tf.tensor(values, [...spec.shape], 'float32'), true));
  }
  return {
    config,
    variables,
    get(name) {
      const variable = variables.get(name);
      if (variable === undefined) throw new Error(`internal: no parameter ${name}`);
      return variable;
    },
  };
}

/**
 * A variable holding `initial`'s values. The variable shares the data of `initial`, so the initial handle is
 * disposed here; kept, it would hold the data (and a tensor count) after the variable is disposed.
 */
export function variableFrom(initial: tf.Tensor, trainable: boolean): tf.Variable {
  const variable = tf.variable(initial, trainable);
  initial.dispose();
  return variable;
}

/** Overwrites every parameter with `weights` (validated first, so a bad set changes nothing). */
export function assignParameters(parameters: ModelParameters, weights: NamedTensors): void {
  validateWeights(parameters.config, weights, { subject: 'Trainer weights' });
  for (const [name, variable] of parameters.variables) {
    const tensor = weights.get(name)!;
    tf.tidy(() => variable.assign(tf.tensor(toFloat32(tensor), [...tensor.shape], 'float32')));
  }
}

/** Copies of every parameter as F32 host tensors, in `expectedWeights` order. */
export async function readParameters(parameters: ModelParameters): Promise<NamedTensors> {
  const named: NamedTensors = new Map();
  for (const [name, variable] of parameters.variables) {
    const data = (await variable.data()) as Float32Array;
    named.set(name, float32Tensor(variable.shape, Float32Array.from(data)));
  }
  return named;
}

export function disposeParameters(parameters: ModelParameters): void {
  for (const variable of parameters.variables.values()) variable.dispose();
}
