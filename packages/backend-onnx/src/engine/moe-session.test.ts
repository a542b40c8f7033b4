import { moeLayerIndices } from '@moerl/core';
import { createRandomWeights, createReferenceModel, tinyConfigs, tinyTokens } from '@moerl/testkit';
import { describe, expect, it } from 'vitest';
import { createMoeSession, type LayerKv, MASKED } from './moe-session.js';

function causalBias(sequence: number, past: number): Float32Array {
  const total = past + sequence;
  const bias = new Float32Array(sequence * total);
  for (let query = 0; query < sequence; query++)
    for (let slot = 0; slot < total; slot++) bias[query * total + slot] = slot <= past + query ? 0 : MASKED;
  return bias;
}

function maxRelativeError(actual: Float32Array, expected: Float32Array): number {
  let scale = 0;
  for (const value of expected) scale = Math.max(scale, Math.abs(value));
  let worst = 0;
  for (let index = 0; index < expected.length; index++)
    worst = Math.max(worst, Math.abs(actual[index]! - expected[index]!) / scale);
  return worst;
}

const range = (length: number) => Array.from({ length }, (_, index) => index);

describe('the ONNX MoE graph against the reference forward pass (fp32)', () => {
  for (const [name, config] of Object.entries(tinyConfigs)) {
    const weights = createRandomWeights(config, 7);
    const reference = createReferenceModel(config, weights).forward(tinyTokens);
    const moeLayers = moeLayerIndices(config).length;

    it(`${name}: prefill logits and routing`, async () => {
      const session = await createMoeSession({
        config,
        weights,
        precision: 'fp32',
        executionProvider: 'cpu',
      });
      const n = tinyTokens.length;
      const out = await session.forward({
        batch: 1,
        sequence: n,
        inputIds: tinyTokens,
        positionIds: range(n),
        attentionBias: causalBias(n, 0),
        logitRows: range(n),
      });
      expect(maxRelativeError(out.logits, reference.logits)).toBeLessThan(1e-4);
      expect(out.routing.length).toBe(n * moeLayers * config.topK);
      expect([...out.routing]).toEqual([...reference.routing.experts]);
      await session.release();
    });

    it(`${name}: step-by-step decode with the KV cache`, async () => {
      const session = await createMoeSession({
        config,
        weights,
        precision: 'fp32',
        executionProvider: 'cpu',
      });
      let past: LayerKv[] | undefined;
      const vocab = config.vocabSize;
      const row = moeLayers * config.topK;
      for (let position = 0; position < tinyTokens.length; position++) {
        const out = await session.forward({
          batch: 1,
          sequence: 1,
          inputIds: [tinyTokens[position]!],
          positionIds: [position],
          attentionBias: causalBias(1, position),
          logitRows: [0],
          ...(past === undefined ? {} : { past }),
        });
        past = out.present;
        const want = reference.logits.subarray(position * vocab, (position + 1) * vocab);
        expect(maxRelativeError(out.logits, want)).toBeLessThan(1e-4);
        expect([...out.routing]).toEqual([
          ...reference.routing.experts.subarray(position * row, (position + 1) * row),
        ]);
      }
      await session.release();
    });
  }
});

describe('fp16 precision', () => {
  const config = tinyConfigs.moe;
  const weights = createRandomWeights(config, 7);
  const reference = createReferenceModel(config, weights).forward(tinyTokens);
  const n = tinyTokens.length;
  const prefill = async (precision: 'fp32' | 'fp16') => {
    const session = await createMoeSession({ config, weights, precision, executionProvider: 'cpu' });
    const out = await session.forward({
      batch: 1,
      sequence: n,
      inputIds: tinyTokens,
      positionIds: range(n),
      attentionBias: causalBias(n, 0),
      logitRows: range(n),
    });
    await session.release();
    return out;
  };

  it('computes in half precision: close to the reference, but not float32-exact', async () => {
    const half = await prefill('fp16');
    const error = maxRelativeError(half.logits, reference.logits);
    // float16 keeps 11 significant bits (relative step 2^-11 ≈ 5e-4); errors compound over layers.
    expect(error).toBeLessThan(2e-2);
    expect(error).toBeGreaterThan(1e-4);
    // KV leaves the graph as float32 holding float16 values: rounding to float16 changes nothing.
    const key = half.present[0]!.key.data as Float32Array;
    const { fromFloat32, toFloat32 } = await import('@moerl/core');
    expect([...toFloat32(fromFloat32(key, 'F16', [key.length]))]).toEqual([...key]);
  });
});
