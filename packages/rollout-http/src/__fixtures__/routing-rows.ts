import { createModelConfig, moeLayerIndices } from '@moerl/core';

/**
 * 6 layers, MoE layers [1, 5], 6 experts, top-2: dense layers sit before, between and after MoE ones (the
 * shape of testkit's tinyDenseAndSparseConfig, built here because fixtures may not import testkit).
 */
export const config = createModelConfig({
  vocabSize: 32,
  hiddenSize: 16,
  numLayers: 6,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 8,
  numExperts: 6,
  topK: 2,
  moeIntermediateSize: 8,
  intermediateSize: 12,
  decoderSparseStep: 2,
  mlpOnlyLayers: [3],
});
export const moeLayers = moeLayerIndices(config);

/** Distinct, valid ids per row and MoE layer; row 0 layer 0 uses expert 0, the dense-zero trap. */
export function moeRows(count: number, offset = 0): number[][][] {
  return Array.from({ length: count }, (_, index) => {
    const row = index + offset;
    return moeLayers.map((_, slot) => [(row + slot) % 6, (row + slot + 1) % 6]);
  });
}

export const flat = (rows: readonly (readonly (readonly number[])[])[]): number[] => rows.flat(2);
