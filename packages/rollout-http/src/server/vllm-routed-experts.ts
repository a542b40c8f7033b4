import { type ModelConfig, type RoutingRecord, sliceRoutingRecord } from '@moerl/core';
import { routingToHiddenLayers } from '../routing/wire-routing.js';
import { encodeBase64 } from '../wire/base64.js';
import { type NpyWriteDtype, writeNpy } from '../wire/npy.js';

/** vLLM's routing dtype: uint8 while every expert id fits in a byte, uint16 above 256 experts. */
export function vllmRoutingDtype(numExperts: number): Extract<NpyWriteDtype, '|u1' | '<u2'> {
  return numExperts <= 256 ? '|u1' : '<u2';
}

/**
 * vLLM's `choices[i].routed_experts`: base64 of a `.npy` of shape
 * `(prompt + generated − 1 − promptStart, num_hidden_layers, K)`, dense layers as rows of zeros.
 */
export function encodeVllmRoutedExperts(
  routing: RoutingRecord,
  promptStart: number,
  config: ModelConfig,
): string {
  const rows = sliceRoutingRecord(routing, promptStart);
  const hidden = routingToHiddenLayers(rows, config);
  const shape = [rows.positions, config.numLayers, rows.topK];
  return encodeBase64(writeNpy(hidden, shape, vllmRoutingDtype(config.numExperts)));
}
