import type { RoutingRecord } from '@moerl/core';
import * as tf from '@tensorflow/tfjs-core';
import { type ExpertComputation, forwardHidden } from '../model/forward.js';
import { expertLoadImbalance, loadBalancingLoss } from '../model/load-balancing-loss.js';
import type { ModelParameters } from '../model/parameters.js';
import type { PositionTableCache } from '../model/position-tables.js';
import { tokenLogprobs } from '../model/token-logprobs.js';
import type { PaddedSequences } from './prepare-batch.js';

/** Turns a micro-batch's detached logprobs (and entropy) into the objective's per-token gradients. */
export type GradientSource = (
  logprobs: Float32Array,
  entropy: Float32Array | undefined,
) => { gradient: Float32Array; entropyGradient: Float32Array | undefined };

export interface SurrogateOptions {
  readonly replay: readonly (RoutingRecord | undefined)[];
  readonly temperature: number;
  readonly withEntropy: boolean;
  readonly experts: ExpertComputation;
  /** Partial replay of `replay`; the pass adds its replayed and replaced expert slots to `replayCounts`. */
  readonly partialReplay?: { readonly minScoreRatio: number };
  readonly replayCounts?: { replayed: number; replaced: number };
  /** RoPE tables and causal masks kept across passes; built per pass without one. */
  readonly positionTables?: PositionTableCache;
  /**
   * Adds `coefficient · weight · loadBalancingLoss` to the surrogate (weight: this micro-batch's share of
   * the step's rows) and reports the unweighted loss and per-layer expert load. Absent or 0: no term.
   */
  readonly routerAux?: {
    readonly coefficient: number;
    readonly weight: number;
    readonly report: (loss: number, imbalance: number[]) => void;
  };
}

/**
 * d/dW of the surrogate `Σ_t g_t · logprob_t + Σ_t e_t · entropy_t` over one micro-batch, where g and e come
 * from `source` given the detached logprobs of this very forward pass (so an objective is evaluated inside
 * the taped pass and needs no second forward). Returns the gradient of every parameter that received one,
 * by weight name; the caller owns (disposes) the tensors. An expert no token was routed to gets none.
 */
export function surrogateGradients(
  parameters: ModelParameters,
  padded: PaddedSequences,
  options: SurrogateOptions,
  source: GradientSource,
): Map<string, tf.Tensor> {
  const names = new Map<string, string>(
    [...parameters.variables].map(([name, variable]) => [variable.name, name]),
  );
  const { value, grads } = tf.variableGrads(() => {
    const aux =
      options.routerAux !== undefined && options.routerAux.coefficient > 0 ? options.routerAux : undefined;
    const forward = forwardHidden(parameters, padded.batch, {
      replay: options.replay,
      experts: options.experts,
      routerStats: aux !== undefined,
      ...(options.positionTables === undefined ? {} : { positionTables: options.positionTables }),
      ...(options.partialReplay === undefined ? {} : { partialReplay: options.partialReplay }),
    });
    if (options.replayCounts !== undefined) {
      options.replayCounts.replayed += forward.replayedSlots;
      options.replayCounts.replaced += forward.replacedSlots;
    }
    const out = tokenLogprobs(
      parameters,
      forward.hidden,
      padded.rows,
      padded.targets,
      options.temperature,
      options.withEntropy,
    );
    const { gradient, entropyGradient } = source(
      Float32Array.from(out.logprobs.dataSync()),
      out.entropy === undefined ? undefined : Float32Array.from(out.entropy.dataSync()),
    );
    let surrogate = tf.sum(tf.mul(out.logprobs, tf.tensor1d(gradient)));
    if (entropyGradient !== undefined && out.entropy !== undefined) {
      surrogate = tf.add(surrogate, tf.sum(tf.mul(out.entropy, tf.tensor1d(entropyGradient))));
    }
    if (aux !== undefined && forward.routerStats !== undefined) {
      const { numExperts, topK } = parameters.config;
      const balance = loadBalancingLoss(forward.routerStats, numExperts);
      aux.report(balance.dataSync()[0]!, expertLoadImbalance(forward.routerStats, numExperts, topK));
      surrogate = tf.add(surrogate, tf.mul(balance, aux.coefficient * aux.weight));
    }
    return surrogate as tf.Scalar;
  }, [...parameters.variables.values()]);
  value.dispose();
  const named = new Map<string, tf.Tensor>();
  for (const [variableName, gradient] of Object.entries(grads)) {
    const name = names.get(variableName);
    if (name !== undefined && gradient !== null && gradient !== undefined) named.set(name, gradient);
    else gradient?.dispose();
  }
  return named;
}
