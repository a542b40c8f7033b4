import { describe, expect, it } from 'vitest';
import { MoerlError } from '../errors/moerl-error.js';
import { createModelConfig, type ModelConfigInput, moeLayerIndices } from './model-config.js';

const base: ModelConfigInput = {
  vocabSize: 32,
  hiddenSize: 16,
  numLayers: 4,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  numExperts: 4,
  topK: 2,
  moeIntermediateSize: 8,
};

function problemsOf(input: ModelConfigInput): string[] {
  try {
    createModelConfig(input);
  } catch (error) {
    expect(MoerlError.isInstance(error, 'CONFIG_INVALID')).toBe(true);
    return (error as MoerlError).details.problems as string[];
  }
  return [];
}

describe('createModelConfig', () => {
  it('fills defaults: headDim from hidden / heads, intermediate from the expert width, HF flags', () => {
    const config = createModelConfig(base);
    expect(config.headDim).toBe(4);
    expect(config.intermediateSize).toBe(8);
    expect(config.normTopKProb).toBe(false);
    expect(config.tieWordEmbeddings).toBe(false);
    expect(config.ropeTheta).toBe(10_000);
    expect(config.qkNorm).toBe(true);
  });

  it('keeps an explicit headDim that differs from hidden / heads', () => {
    expect(createModelConfig({ ...base, headDim: 8 }).headDim).toBe(8);
  });

  it('names each bad field with what it found', () => {
    expect(problemsOf({ ...base, topK: 5 })).toEqual(['topK (5) must not exceed numExperts (4)']);
    expect(problemsOf({ ...base, numKeyValueHeads: 3 })).toEqual([
      'numAttentionHeads (4) must be divisible by numKeyValueHeads (3)',
    ]);
    expect(problemsOf({ ...base, hiddenSize: 0 })[0]).toMatch(
      /hiddenSize must be a positive integer, found 0/,
    );
    expect(problemsOf({ ...base, rmsNormEps: Number.NaN })).toEqual([
      'rmsNormEps must be a positive finite number, found NaN',
    ]);
    expect(problemsOf({ ...base, mlpOnlyLayers: [7] })[0]).toMatch(/mlpOnlyLayers holds 7/);
    expect(problemsOf({ ...base, headDim: 5 })).toEqual([
      'headDim must be even for rotary embeddings, found 5',
    ]);
    expect(problemsOf({ ...base, eosTokenId: 32 })[0]).toMatch(/eosTokenId must be a token id in \[0, 32\)/);
  });

  it('reports every problem at once', () => {
    expect(
      problemsOf({ ...base, topK: 9, vocabSize: -1, normTopKProb: 'yes' as unknown as boolean }),
    ).toHaveLength(3);
  });

  it('rejects a hidden size that does not split into heads when headDim is not given', () => {
    expect(problemsOf({ ...base, hiddenSize: 18 })[0]).toBe(
      'hiddenSize (18) must be divisible by numAttentionHeads (4) unless headDim is given',
    );
    expect(problemsOf({ ...base, hiddenSize: 18, headDim: 4 })).toEqual([]);
  });
});

describe('moeLayerIndices', () => {
  it('follows decoder_sparse_step and mlp_only_layers as HF does', () => {
    expect(moeLayerIndices(createModelConfig(base))).toEqual([0, 1, 2, 3]);
    expect(moeLayerIndices(createModelConfig({ ...base, decoderSparseStep: 2 }))).toEqual([1, 3]);
    expect(moeLayerIndices(createModelConfig({ ...base, mlpOnlyLayers: [0, 2] }))).toEqual([1, 3]);
    expect(moeLayerIndices(createModelConfig({ ...base, numExperts: 0, topK: 0 }))).toEqual([]);
  });
});
