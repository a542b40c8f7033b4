import * as tf from '@tensorflow/tfjs-core';
import type { RouterStats } from './forward.js';

/**
 * Hugging Face's `load_balancing_loss_func` (Switch Transformer style) over the MoE layers of one forward
 * pass, with every layer's rows pooled as HF concatenates them: `E · Σ_e f_e · P_e`, where `f_e` is the
 * fraction of (row, layer) pairs that used expert e (summed over the k slots) and `P_e` the mean router
 * probability of e over the same pairs. Padding rows count in neither (HF's attention-mask variant). The
 * counts are constants; the gradient reaches the router through `P_e`. A perfectly balanced router gives
 * topK. The experts counted are the ones used, so under replay they are the replayed ones (as Megatron's
 * router replay computes its auxiliary loss).
 */
export function loadBalancingLoss(stats: RouterStats, numExperts: number): tf.Scalar {
  const layers = stats.expertCounts.length / numExperts;
  const pairs = stats.realRows * layers;
  if (pairs === 0) return tf.scalar(0);
  const fractions = new Float32Array(numExperts);
  for (let index = 0; index < stats.expertCounts.length; index++) {
    fractions[index % numExperts]! += stats.expertCounts[index]! / pairs;
  }
  const meanProbabilities = tf.div(stats.probabilitySum, pairs);
  return tf.mul(tf.sum(tf.mul(meanProbabilities, tf.tensor1d(fractions))), numExperts) as tf.Scalar;
}

/**
 * Per MoE layer, the load of the busiest expert relative to a perfectly balanced one:
 * `max_e count_e / (rows · topK / numExperts)`; 1 is perfect balance, numExperts / topK the worst.
 */
export function expertLoadImbalance(stats: RouterStats, numExperts: number, topK: number): number[] {
  const layers = stats.expertCounts.length / numExperts;
  const balanced = (stats.realRows * topK) / numExperts;
  return Array.from({ length: layers }, (_, layer) => {
    let busiest = 0;
    for (let expert = 0; expert < numExperts; expert++) {
      busiest = Math.max(busiest, stats.expertCounts[layer * numExperts + expert]!);
    }
    return balanced === 0 ? Number.NaN : busiest / balanced;
  });
}
