import {
  bfloat16BitsToFloat32,
  createModelConfig,
  createRoutingRecord,
  expectedWeights,
  float32Tensor,
  float32ToBfloat16Bits,
  type ModelConfig,
  MoerlError,
  type NamedTensors,
  type RoutingRecord,
  roundToBfloat16,
  routingRow,
  sliceRoutingRecord,
} from '@moerl/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { moerlErrorCodeOf as codeOf } from '../conformance/conformance-case.js';
import {
  tinyBiasedTiedConfig,
  tinyDenseAndSparseConfig,
  tinyMoeConfig,
  tinyTokens,
} from '../fixtures/tiny-config.js';
import { createRandomWeights } from '../weights/random-weights.js';
import { matVec, topK } from './math.js';
import { createReferenceModel } from './reference-model.js';

// ---------------------------------------------------------------------------------------------------------
// Helpers

function errorOf(action: () => unknown): MoerlError {
  try {
    action();
  } catch (error) {
    if (MoerlError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a MoerlError');
}

/** Bit patterns, so that equality means bit-for-bit (and -0 ≠ +0, NaN = NaN). */
const bits = (values: Float32Array) => new Uint32Array(values.buffer, values.byteOffset, values.length);

function data(weights: NamedTensors, name: string): Float32Array {
  const tensor = weights.get(name);
  if (tensor === undefined || tensor.dtype !== 'F32') throw new Error(`no F32 weight ${name}`);
  return tensor.data;
}

function cloneWeights(weights: NamedTensors): NamedTensors {
  return new Map(
    [...weights].map(([name, tensor]) => [
      name,
      float32Tensor(tensor.shape, (tensor.data as Float32Array).slice()),
    ]),
  );
}

/** Weights for `config`: every expected weight taken from `source` where present, the rest random. */
function weightsLike(config: ModelConfig, source: NamedTensors, seed = 99): NamedTensors {
  const fresh = createRandomWeights(config, seed);
  return new Map(expectedWeights(config).map(({ name }) => [name, source.get(name) ?? fresh.get(name)!]));
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let index = 0; index < a.length; index++) max = Math.max(max, Math.abs(a[index]! - b[index]!));
  return max;
}

// ---------------------------------------------------------------------------------------------------------
// An independent float64 implementation, written whole-sequence with nested arrays. It finds MoE layers by
// the presence of a router weight, GQA heads by h · kvHeads / heads, and top-k by a stable sort, so it
// shares no code and few idioms with the reference. `r` rounds a stored activation: the identity for float
// arithmetic, or to bfloat16 where HF's bf16 eager model stores a bf16 tensor.

type Matrix = number[][];

const toBfloat16 = (value: number) => bfloat16BitsToFloat32(float32ToBfloat16Bits(value));

function naiveForward(
  config: ModelConfig,
  weights: NamedTensors,
  tokens: readonly number[],
  r: (value: number) => number = (value) => value,
) {
  const vector = (name: string): number[] => Array.from(data(weights, name));
  const matrix = (name: string): Matrix => {
    const tensor = weights.get(name)!;
    const [rows, cols] = tensor.shape as [number, number];
    const values = vector(name);
    return Array.from({ length: rows }, (_, r) => values.slice(r * cols, (r + 1) * cols));
  };
  const dot = (a: number[], b: number[]) => a.reduce((sum, value, index) => sum + value * b[index]!, 0);
  const linear = (xs: Matrix, name: string): Matrix => {
    const w = matrix(`${name}.weight`);
    const b = weights.has(`${name}.bias`) ? vector(`${name}.bias`) : w.map(() => 0);
    return xs.map((x) => w.map((wRow, i) => r(dot(wRow, x) + b[i]!)));
  };
  const norm = (x: number[], w: number[]) => {
    const rms = Math.sqrt(dot(x, x) / x.length + config.rmsNormEps);
    return x.map((value, index) => r(r(value / rms) * w[index]!));
  };
  const softmaxRow = (xs: number[]) => {
    const max = Math.max(...xs);
    const exps = xs.map((value) => Math.exp(value - max));
    const total = exps.reduce((a, b) => a + b, 0);
    return exps.map((value) => value / total);
  };
  const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
  const ffn = (x: number[], prefix: string) => {
    const [gate] = linear([x], `${prefix}.gate_proj`);
    const [up] = linear([x], `${prefix}.up_proj`);
    const hiddenActivation = gate!.map((g, i) => r(r(g * sigmoid(g)) * up![i]!));
    return linear([hiddenActivation], `${prefix}.down_proj`)[0]!;
  };
  const d = config.headDim;
  const half = d / 2;
  const rotate = (v: number[], position: number) => {
    const out = v.slice();
    for (let i = 0; i < half; i++) {
      const angle = position * config.ropeTheta ** (-(2 * i) / d);
      const cos = r(Math.cos(angle));
      const sin = r(Math.sin(angle));
      // (v[i] + i·v[i+half]) · e^{i·angle}
      out[i] = r(r(v[i]! * cos) - r(v[i + half]! * sin));
      out[i + half] = r(r(v[i]! * sin) + r(v[i + half]! * cos));
    }
    return out;
  };
  const embed = matrix('model.embed_tokens.weight');
  let xs: Matrix = tokens.map((token) => embed[token]!.map(r));
  const experts: number[][][] = tokens.map(() => []);
  const nH = config.numAttentionHeads;
  const nKv = config.numKeyValueHeads;
  for (let layer = 0; layer < config.numLayers; layer++) {
    const p = `model.layers.${layer}`;
    const normed = xs.map((x) => norm(x, vector(`${p}.input_layernorm.weight`)));
    const splitHeads = (m: Matrix, count: number, normName: string): number[][][] =>
      m.map((rowValues, position) =>
        Array.from({ length: count }, (_, h) => {
          let head = rowValues.slice(h * d, (h + 1) * d);
          if (weights.has(normName)) head = norm(head, vector(normName));
          return rotate(head, position);
        }),
      );
    const q = splitHeads(linear(normed, `${p}.self_attn.q_proj`), nH, `${p}.self_attn.q_norm.weight`);
    const k = splitHeads(linear(normed, `${p}.self_attn.k_proj`), nKv, `${p}.self_attn.k_norm.weight`);
    const vRows = linear(normed, `${p}.self_attn.v_proj`);
    const concatenated: Matrix = tokens.map(() => []);
    for (let h = 0; h < nH; h++) {
      const g = Math.floor((h * nKv) / nH);
      for (let t = 0; t < tokens.length; t++) {
        const scores = tokens.map((_, s) =>
          s <= t ? r(r(dot(q[t]![h]!, k[s]![g]!)) / Math.sqrt(d)) : -Infinity,
        );
        const weightsRow = softmaxRow(scores).map(r);
        for (let i = 0; i < d; i++) {
          concatenated[t]!.push(r(weightsRow.reduce((sum, w, s) => sum + w * vRows[s]![g * d + i]!, 0)));
        }
      }
    }
    const attention = linear(concatenated, `${p}.self_attn.o_proj`);
    xs = xs.map((x, t) => x.map((value, i) => r(value + attention[t]![i]!)));
    const routerName = `${p}.mlp.gate.weight`;
    xs = xs.map((x, t) => {
      const n = norm(x, vector(`${p}.post_attention_layernorm.weight`));
      let out: number[];
      if (weights.has(routerName)) {
        const probabilities = softmaxRow(linear([n], `${p}.mlp.gate`)[0]!);
        const order = probabilities
          .map((_, e) => e)
          .sort((a, b) => probabilities[b]! - probabilities[a]! || a - b)
          .slice(0, config.topK);
        const total = order.reduce((sum, e) => sum + probabilities[e]!, 0);
        out = x.map(() => 0);
        // In ascending expert id, as HF's loop over experts adds them.
        for (const e of [...order].sort((a, b) => a - b)) {
          const w = config.normTopKProb ? probabilities[e]! / total : probabilities[e]!;
          const y = ffn(n, `${p}.mlp.experts.${e}`);
          out = out.map((value, i) => r(value + r(w * y[i]!)));
        }
        experts[t]!.push(order);
      } else {
        out = ffn(n, `${p}.mlp`);
      }
      return x.map((value, i) => r(value + out[i]!));
    });
  }
  const head = weights.has('lm_head.weight') ? 'lm_head' : 'model.embed_tokens';
  const finalNormed = xs.map((x) => norm(x, vector('model.norm.weight')));
  return { logits: linear(finalNormed, head), experts };
}

// ---------------------------------------------------------------------------------------------------------

describe('createReferenceModel: a case computed on paper', () => {
  // vocab 3, hidden 2, one layer, one head of width 2, two experts, top-1 without renormalisation.
  // With a single token, attention returns v whatever q and k are (softmax over one score is 1).
  const config = createModelConfig({
    vocabSize: 3,
    hiddenSize: 2,
    numLayers: 1,
    numAttentionHeads: 1,
    numKeyValueHeads: 1,
    numExperts: 2,
    topK: 1,
    moeIntermediateSize: 1,
    qkNorm: false,
    normTopKProb: false,
  });
  const t = (shape: number[], values: number[]) => float32Tensor(shape, Float32Array.from(values));
  const weights: NamedTensors = new Map([
    ['model.embed_tokens.weight', t([3, 2], [1, 1, 5, 5, -1, 2])],
    ['model.layers.0.input_layernorm.weight', t([2], [1, 1])],
    ['model.layers.0.self_attn.q_proj.weight', t([2, 2], [0.3, -0.2, 0.1, 0.4])],
    ['model.layers.0.self_attn.k_proj.weight', t([2, 2], [0.5, 0.5, -0.5, 0.5])],
    ['model.layers.0.self_attn.v_proj.weight', t([2, 2], [1, 0, 0, 2])],
    ['model.layers.0.self_attn.o_proj.weight', t([2, 2], [1, 0, 0, 1])],
    ['model.layers.0.post_attention_layernorm.weight', t([2], [1, 1])],
    ['model.layers.0.mlp.gate.weight', t([2, 2], [1, 0, 0, 1])],
    ['model.layers.0.mlp.experts.0.gate_proj.weight', t([1, 2], [7, 7])],
    ['model.layers.0.mlp.experts.0.up_proj.weight', t([1, 2], [7, 7])],
    ['model.layers.0.mlp.experts.0.down_proj.weight', t([2, 1], [7, 7])],
    ['model.layers.0.mlp.experts.1.gate_proj.weight', t([1, 2], [1, 1])],
    ['model.layers.0.mlp.experts.1.up_proj.weight', t([1, 2], [1, 0])],
    ['model.layers.0.mlp.experts.1.down_proj.weight', t([2, 1], [1, -1])],
    ['model.norm.weight', t([2], [1, 1])],
    ['lm_head.weight', t([3, 2], [1, 0, 0, 1, 1, 1])],
  ]);

  it('gives the logits worked out by hand', () => {
    // x = embed[0] = (1, 1); rms 1, so input_layernorm(x) ≈ (1, 1); v = (1, 2); h = x + o(v) = (2, 3).
    // post norm: rms(2, 3) = √6.5, n = (2, 3) / √6.5 = (0.784465, 1.176697).
    // router logits = n, p(expert 1) = 1 / (1 + e^(0.784465 − 1.176697)) = 0.596820 > 0.5: expert 1 wins.
    // expert 1: gate = n0 + n1 = 1.961161, up = n0 = 0.784465,
    //   silu(gate) · up = 1.961161 / (1 + e^−1.961161) · 0.784465 = 1.348705, down → (1.348705, −1.348705).
    // out = h + 0.596820 · (1.348705, −1.348705) = (2.804934, 2.195065);
    // final norm: rms = √((2.804934² + 2.195065²) / 2) = 2.518514 → (1.113720, 0.871567).
    // lm_head rows (1, 0), (0, 1), (1, 1) → logits (1.113720, 0.871567, 1.985286).
    const model = createReferenceModel(config, weights);
    const result = model.forward([0]);
    const expected = [1.11372, 0.871567, 1.985286];
    expected.forEach((value, index) => {
      expect(result.logits[index]).toBeCloseTo(value, 5);
    });
    expect(Array.from(result.routing.experts)).toEqual([1]);
    expect(result.routingWeights[0]).toBeCloseTo(0.59682, 5);
    expect(result.routerProbabilities[0]).toBeCloseTo(1 - 0.59682, 5);
    expect(result.routerProbabilities[1]).toBeCloseTo(0.59682, 5);
  });

  it('agrees with the float64 implementation on longer inputs of the same model', () => {
    const model = createReferenceModel(config, weights);
    const tokens = [0, 2, 1, 1, 0, 2];
    const reference = model.forward(tokens);
    const naive = naiveForward(config, weights, tokens);
    expect(maxAbsDifference(reference.logits, naive.logits.flat())).toBeLessThan(1e-4);
    expect(Array.from(reference.routing.experts)).toEqual(naive.experts.flat(2));
  });
});

describe('createReferenceModel: agreement with an independent float64 implementation', () => {
  const cases = [
    ['tinyMoeConfig', tinyMoeConfig, 1],
    ['tinyDenseAndSparseConfig', tinyDenseAndSparseConfig, 2],
    ['tinyBiasedTiedConfig', tinyBiasedTiedConfig, 3],
  ] as const;
  for (const [name, config, seed] of cases) {
    it(`matches on ${name}`, () => {
      const weights = createRandomWeights(config, seed);
      const reference = createReferenceModel(config, weights).forward(tinyTokens);
      const naive = naiveForward(config, weights, tinyTokens);
      expect(Array.from(reference.routing.experts)).toEqual(naive.experts.flat(2));
      expect(maxAbsDifference(reference.logits, naive.logits.flat())).toBeLessThan(1e-4);
      // Non-trivial logits, so the comparison means something.
      expect(Math.max(...reference.logits.map(Math.abs))).toBeGreaterThan(0.5);
    });
  }
});

describe('createReferenceModel: bf16 activations', () => {
  const bf16Weights = (weights: NamedTensors): NamedTensors =>
    new Map(
      [...weights].map(([name, tensor]) => [
        name,
        float32Tensor(tensor.shape, roundToBfloat16(tensor.data as Float32Array)),
      ]),
    );
  const isBfloat16 = (values: Float32Array) => bits(values).every((pattern) => (pattern & 0xffff) === 0);
  const cases = [
    ['tinyMoeConfig', tinyMoeConfig, 1],
    ['tinyDenseAndSparseConfig', tinyDenseAndSparseConfig, 2],
    ['tinyBiasedTiedConfig', tinyBiasedTiedConfig, 3],
    // Top-4: the order in which the experts are added matters once rounded.
    ['top-4 of 6', createModelConfig({ ...tinyDenseAndSparseConfig, topK: 4 }), 4],
  ] as const;
  for (const [name, config, seed] of cases) {
    it(`matches the float64 implementation rounding to bf16 at the same points on ${name}`, () => {
      const weights = bf16Weights(createRandomWeights(config, seed));
      const reference = createReferenceModel(config, weights, { activations: 'bf16' }).forward(tinyTokens);
      const naive = naiveForward(config, weights, tinyTokens, toBfloat16);
      const float = createReferenceModel(config, weights).forward(tinyTokens);
      expect(Array.from(reference.routing.experts)).toEqual(naive.experts.flat(2));
      const againstNaive = maxAbsDifference(reference.logits, naive.logits.flat());
      const againstFloat = maxAbsDifference(reference.logits, float.logits);
      // The same roundings give the same bf16 numbers (float64 vs float32 sums before a rounding could land on
      // either side of a bf16 tie, but do not on these cases); float activations are far off.
      expect(againstNaive).toBe(0);
      expect(againstFloat).toBeGreaterThan(1e-3);
    });
  }

  it('stores bf16 values: logits and the final hidden states are bfloat16 numbers', () => {
    const weights = bf16Weights(createRandomWeights(tinyMoeConfig, 4));
    const result = createReferenceModel(tinyMoeConfig, weights, { activations: 'bf16' }).forward(tinyTokens);
    expect(isBfloat16(result.logits)).toBe(true);
    expect(isBfloat16(result.finalHidden)).toBe(true);
    const float = createReferenceModel(tinyMoeConfig, weights).forward(tinyTokens);
    expect(isBfloat16(float.logits)).toBe(false);
  });

  it('reproduces its logits bit-for-bit when replaying its own routing', () => {
    const weights = bf16Weights(createRandomWeights(tinyDenseAndSparseConfig, 5));
    const model = createReferenceModel(tinyDenseAndSparseConfig, weights, { activations: 'bf16' });
    const free = model.forward(tinyTokens);
    const replayed = model.forward(tinyTokens, { routing: free.routing });
    expect(bits(replayed.logits)).toEqual(bits(free.logits));
  });

  it('rejects an unknown activation precision with INVALID_ARGUMENT', () => {
    const weights = createRandomWeights(tinyMoeConfig, 6);
    const error = errorOf(() =>
      createReferenceModel(tinyMoeConfig, weights, { activations: 'fp16' as 'bf16' }),
    );
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toContain('activations');
  });
});

describe('ReferenceModel.forward invariants', () => {
  const config = tinyMoeConfig;
  const weights = createRandomWeights(config, 7);
  const model = createReferenceModel(config, weights);
  const vocab = config.vocabSize;
  const row = config.topK * model.moeLayers.length;

  it('returns the documented shapes', () => {
    const result = model.forward(tinyTokens);
    const positions = tinyTokens.length;
    expect(result.logits).toHaveLength(positions * vocab);
    expect(result.routing).toMatchObject({ positions, moeLayers: 2, topK: 2 });
    expect(result.routing.experts).toHaveLength(positions * 2 * 2);
    expect(result.routingWeights).toHaveLength(positions * 2 * 2);
    expect(result.routerProbabilities).toHaveLength(positions * 2 * config.numExperts);
    expect(result.finalHidden).toHaveLength(positions * config.hiddenSize);
    expect(model.moeLayers).toEqual([0, 1]);
  });

  it('returns the LM head input as finalHidden: logits are lm_head · finalHidden, bit-for-bit', () => {
    const hidden = config.hiddenSize;
    const { logits, finalHidden } = model.forward(tinyTokens);
    for (let position = 0; position < tinyTokens.length; position++) {
      const expected = matVec(
        data(weights, 'lm_head.weight'),
        vocab,
        hidden,
        finalHidden.subarray(position * hidden, (position + 1) * hidden),
      );
      expect(bits(logits.slice(position * vocab, (position + 1) * vocab))).toEqual(bits(expected));
    }
    // After the final RMSNorm: each row's RMS, divided by the norm weight, is ~1.
    const norm = data(weights, 'model.norm.weight');
    for (let position = 0; position < tinyTokens.length; position++) {
      let squares = 0;
      for (let index = 0; index < hidden; index++) {
        squares += (finalHidden[position * hidden + index]! / norm[index]!) ** 2;
      }
      expect(Math.sqrt(squares / hidden)).toBeCloseTo(1, 4);
    }
  });

  it('is causal: changing a later token never changes earlier logits or routing', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: vocab - 1 }), { minLength: 2, maxLength: 12 }),
        fc.nat(),
        fc.integer({ min: 0, max: vocab - 1 }),
        (tokens, pick, replacement) => {
          const changedAt = 1 + (pick % (tokens.length - 1));
          const changed = tokens.slice();
          changed[changedAt] = replacement;
          const a = model.forward(tokens);
          const b = model.forward(changed);
          expect(bits(a.logits.subarray(0, changedAt * vocab))).toEqual(
            bits(b.logits.subarray(0, changedAt * vocab)),
          );
          expect(a.routing.experts.subarray(0, changedAt * row)).toEqual(
            b.routing.experts.subarray(0, changedAt * row),
          );
        },
      ),
      { numRuns: 40 },
    );
  });

  it('gives the logits of a prefix when run on the prefix alone', () => {
    const full = model.forward(tinyTokens);
    const prefix = model.forward(tinyTokens.slice(0, 5));
    expect(bits(prefix.logits)).toEqual(bits(full.logits.subarray(0, 5 * vocab)));
  });

  it('reproduces its logits bit-for-bit when replaying its own routing, whole or in part', () => {
    const free = model.forward(tinyTokens);
    for (const record of [
      free.routing,
      sliceRoutingRecord(free.routing, 0, tinyTokens.length - 1),
      sliceRoutingRecord(free.routing, 0, 3),
      sliceRoutingRecord(free.routing, 0, 0),
    ]) {
      const replayed = model.forward(tinyTokens, { routing: record });
      expect(bits(replayed.logits)).toEqual(bits(free.logits));
      expect(replayed.routing.experts).toEqual(free.routing.experts);
      expect(bits(replayed.routingWeights)).toEqual(bits(free.routingWeights));
      expect(bits(replayed.routerProbabilities)).toEqual(bits(free.routerProbabilities));
    }
  });

  it('replays a different routing: logits change, the record returned is the one replayed', () => {
    const free = model.forward(tinyTokens);
    const covered = tinyTokens.length - 1;
    // At each covered position and layer, the two experts the router did not choose.
    const other: number[] = [];
    for (let position = 0; position < covered; position++) {
      for (let layer = 0; layer < 2; layer++) {
        const chosen = Array.from(routingRow(free.routing, position, layer));
        other.push(...[0, 1, 2, 3].filter((expert) => !chosen.includes(expert)));
      }
    }
    const record = createRoutingRecord({ positions: covered, moeLayers: 2, topK: 2, numExperts: 4 }, other);
    const replayed = model.forward(tinyTokens, { routing: record });
    expect(maxAbsDifference(replayed.logits, free.logits)).toBeGreaterThan(1e-3);
    expect(Array.from(replayed.routing.experts.subarray(0, covered * row))).toEqual(other);
    // The last position is not covered: it routes freely on its own router probabilities.
    for (let layer = 0; layer < 2; layer++) {
      const start = (covered * 2 + layer) * config.numExperts;
      const probabilities = replayed.routerProbabilities.subarray(start, start + config.numExperts);
      expect(Array.from(routingRow(replayed.routing, covered, layer))).toEqual(topK(probabilities, 2));
    }
  });

  it('weights replayed experts by the full softmax at their ids, renormalised iff normTopKProb', () => {
    for (const normTopKProb of [true, false]) {
      const variant = { ...config, normTopKProb };
      const variantModel = createReferenceModel(variant, weights);
      const record = createRoutingRecord(
        { positions: 4, moeLayers: 2, topK: 2, numExperts: 4 },
        [3, 0, 1, 2, 2, 1, 0, 3, 1, 3, 3, 1, 0, 2, 2, 0],
      );
      const result = variantModel.forward(tinyTokens.slice(0, 6), { routing: record });
      for (let position = 0; position < 6; position++) {
        for (let layer = 0; layer < 2; layer++) {
          const ids = Array.from(routingRow(result.routing, position, layer));
          const start = (position * 2 + layer) * 4;
          const probabilities = ids.map((id) => result.routerProbabilities[start + id]!);
          const total = probabilities[0]! + probabilities[1]!;
          const expected = normTopKProb ? probabilities.map((p) => p / total) : probabilities;
          const weightsAt = result.routingWeights.subarray(
            (position * 2 + layer) * 2,
            (position * 2 + layer + 1) * 2,
          );
          expected.forEach((value, k) => {
            expect(weightsAt[k]).toBeCloseTo(value, 6);
          });
          if (position < 4) expect(ids).toEqual(Array.from(routingRow(record, position, layer)));
        }
      }
    }
  });

  it('normTopKProb: same routing at the first MoE layer, weights summing to one only when on', () => {
    const on = createReferenceModel({ ...config, normTopKProb: true }, weights).forward(tinyTokens);
    const off = createReferenceModel({ ...config, normTopKProb: false }, weights).forward(tinyTokens);
    expect(maxAbsDifference(on.logits, off.logits)).toBeGreaterThan(1e-3);
    for (let position = 0; position < tinyTokens.length; position++) {
      // Layer 0's router sees the same input in both models.
      expect(Array.from(routingRow(on.routing, position, 0))).toEqual(
        Array.from(routingRow(off.routing, position, 0)),
      );
      const onWeights = on.routingWeights.subarray(position * 4, position * 4 + 2);
      const offWeights = off.routingWeights.subarray(position * 4, position * 4 + 2);
      expect(onWeights[0]! + onWeights[1]!).toBeCloseTo(1, 6);
      expect(offWeights[0]! + offWeights[1]!).toBeLessThan(1);
      expect(onWeights[0]! / onWeights[1]!).toBeCloseTo(offWeights[0]! / offWeights[1]!, 5);
    }
  });

  it('normTopKProb makes no difference when every expert is chosen', () => {
    const all = { ...config, topK: 4 };
    const on = createReferenceModel({ ...all, normTopKProb: true }, weights).forward(tinyTokens);
    const off = createReferenceModel({ ...all, normTopKProb: false }, weights).forward(tinyTokens);
    expect(maxAbsDifference(on.logits, off.logits)).toBeLessThan(1e-5);
  });

  it('is deterministic and unaffected by later changes to the weights it was built from', () => {
    const local = cloneWeights(weights);
    const localModel = createReferenceModel(config, local);
    const before = localModel.forward(tinyTokens);
    data(local, 'lm_head.weight').fill(0);
    local.delete('model.norm.weight');
    const after = localModel.forward(tinyTokens);
    expect(bits(after.logits)).toEqual(bits(before.logits));
    expect(bits(after.logits)).toEqual(bits(model.forward(tinyTokens).logits));
  });

  it('runs the tiny config over 16 tokens in well under 50 ms', () => {
    model.forward(tinyTokens); // warm up the JIT
    const times: number[] = [];
    for (let run = 0; run < 5; run++) {
      const start = performance.now();
      model.forward(tinyTokens);
      times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    expect(times[2]!).toBeLessThan(50);
  });
});

describe('layer kinds and attention variants', () => {
  it('uses MoE only where moeLayerIndices says, and the dense MLP elsewhere', () => {
    const config = tinyDenseAndSparseConfig;
    const weights = createRandomWeights(config, 11);
    const model = createReferenceModel(config, weights);
    expect(model.moeLayers).toEqual([1, 5]);
    const result = model.forward(tinyTokens);
    expect(result.routing).toMatchObject({ positions: 16, moeLayers: 2, topK: 2 });
    expect(result.routerProbabilities).toHaveLength(16 * 2 * 6);
    // A dense layer's MLP weights (including the mlpOnlyLayers one) take part.
    for (const layer of [0, 3, 4]) {
      const changed = cloneWeights(weights);
      data(changed, `model.layers.${layer}.mlp.down_proj.weight`)[0]! += 0.5;
      const logits = createReferenceModel(config, changed).forward(tinyTokens).logits;
      expect(maxAbsDifference(logits, result.logits)).toBeGreaterThan(1e-5);
    }
  });

  it('handles a model without experts (routing record with no layers)', () => {
    const config = createModelConfig({
      ...tinyMoeConfig,
      numExperts: 0,
      topK: 0,
      moeIntermediateSize: 0,
    });
    const model = createReferenceModel(config, createRandomWeights(config, 5));
    const result = model.forward(tinyTokens);
    expect(result.routing).toMatchObject({ positions: 16, moeLayers: 0, topK: 0 });
    expect(result.routing.experts).toHaveLength(0);
    expect(result.logits.every(Number.isFinite)).toBe(true);
  });

  it('grouped-query attention equals full multi-head attention with duplicated k/v heads', () => {
    const grouped = tinyMoeConfig; // 4 heads over 2 kv heads
    const full = createModelConfig({ ...grouped, numKeyValueHeads: 4 });
    const weights = createRandomWeights(grouped, 13);
    const duplicated = weightsLike(full, weights);
    const d = grouped.headDim;
    for (let layer = 0; layer < grouped.numLayers; layer++) {
      for (const projection of ['k_proj', 'v_proj']) {
        const name = `model.layers.${layer}.self_attn.${projection}.weight`;
        const source = data(weights, name);
        const target = new Float32Array(4 * d * grouped.hiddenSize);
        for (let head = 0; head < 4; head++) {
          const kvHead = Math.floor(head / 2);
          target.set(
            source.subarray(kvHead * d * grouped.hiddenSize, (kvHead + 1) * d * grouped.hiddenSize),
            head * d * grouped.hiddenSize,
          );
        }
        duplicated.set(name, float32Tensor([4 * d, grouped.hiddenSize], target));
      }
    }
    const a = createReferenceModel(grouped, weights).forward(tinyTokens);
    const b = createReferenceModel(full, duplicated).forward(tinyTokens);
    expect(bits(b.logits)).toEqual(bits(a.logits));
  });

  it('uses the attention biases when attentionBias is set; zero biases equal no biases', () => {
    const biased = tinyBiasedTiedConfig;
    const unbiased = createModelConfig({ ...biased, attentionBias: false });
    const weights = createRandomWeights(biased, 17);
    const zeroed = cloneWeights(weights);
    for (const [name, tensor] of zeroed) if (name.endsWith('.bias')) (tensor.data as Float32Array).fill(0);
    const withBias = createReferenceModel(biased, weights).forward(tinyTokens).logits;
    const zeroBias = createReferenceModel(biased, zeroed).forward(tinyTokens).logits;
    const noBias = createReferenceModel(unbiased, weightsLike(unbiased, weights)).forward(tinyTokens).logits;
    expect(bits(zeroBias)).toEqual(bits(noBias));
    expect(maxAbsDifference(withBias, noBias)).toBeGreaterThan(1e-3);
    for (const projection of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) {
      const changed = cloneWeights(zeroed);
      data(changed, `model.layers.1.self_attn.${projection}.bias`).fill(0.3);
      const logits = createReferenceModel(biased, changed).forward(tinyTokens).logits;
      expect(maxAbsDifference(logits, zeroBias)).toBeGreaterThan(1e-5);
    }
  });

  it('ties the output projection to the embedding when tieWordEmbeddings is set', () => {
    const tied = tinyBiasedTiedConfig;
    const untied = createModelConfig({ ...tied, tieWordEmbeddings: false });
    const weights = createRandomWeights(tied, 19);
    expect(weights.has('lm_head.weight')).toBe(false);
    const copied = new Map(weights);
    copied.set(
      'lm_head.weight',
      float32Tensor([tied.vocabSize, tied.hiddenSize], data(weights, 'model.embed_tokens.weight').slice()),
    );
    const a = createReferenceModel(tied, weights).forward(tinyTokens).logits;
    const b = createReferenceModel(untied, copied).forward(tinyTokens).logits;
    expect(bits(b)).toEqual(bits(a));
    const different = createReferenceModel(untied, weightsLike(untied, weights)).forward(tinyTokens).logits;
    expect(maxAbsDifference(different, a)).toBeGreaterThan(1e-3);
  });

  it('applies q/k norm before RoPE only when qkNorm is set', () => {
    const weights = createRandomWeights(tinyMoeConfig, 23);
    const base = createReferenceModel(tinyMoeConfig, weights).forward(tinyTokens).logits;
    const scaledNorm = cloneWeights(weights);
    data(scaledNorm, 'model.layers.0.self_attn.q_norm.weight').fill(3);
    const changed = createReferenceModel(tinyMoeConfig, scaledNorm).forward(tinyTokens).logits;
    expect(maxAbsDifference(changed, base)).toBeGreaterThan(1e-4);
    // Position 0 attends only to itself, so its logits ignore q and k altogether.
    expect(bits(changed.subarray(0, tinyMoeConfig.vocabSize))).toEqual(
      bits(base.subarray(0, tinyMoeConfig.vocabSize)),
    );
  });
});

describe('rejected inputs', () => {
  const config = tinyMoeConfig;
  const weights = createRandomWeights(config, 29);
  const model = createReferenceModel(config, weights);

  it('rejects token ids outside [0, vocab) and empty inputs with INVALID_ARGUMENT', () => {
    for (const bad of [[-1], [32], [1, 1.5], [Number.NaN], [0, 1, 99]]) {
      expect(codeOf(() => model.forward(bad))).toBe('INVALID_ARGUMENT');
    }
    expect(codeOf(() => model.forward([]))).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => model.forward([0, 1, 99])).details).toMatchObject({ position: 2, found: 99 });
    expect(codeOf(() => model.forward(Int32Array.from([0, 31])))).toBeUndefined();
  });

  it('rejects routing records of the wrong shape or with bad ids with ROUTING_SHAPE', () => {
    const tokens = tinyTokens.slice(0, 4);
    const records: RoutingRecord[] = [
      createRoutingRecord({ positions: 4, moeLayers: 1, topK: 2, numExperts: 4 }, [0, 1, 0, 1, 0, 1, 0, 1]),
      createRoutingRecord({ positions: 4, moeLayers: 2, topK: 1, numExperts: 4 }, [0, 1, 0, 1, 0, 1, 0, 1]),
      createRoutingRecord(
        { positions: 5, moeLayers: 2, topK: 2, numExperts: 4 },
        new Array(20).fill(0).map((_, i) => i % 2),
      ),
      { positions: 1, moeLayers: 2, topK: 2, experts: Uint8Array.from([0, 4, 1, 2]) },
      { positions: 1, moeLayers: 2, topK: 2, experts: Uint8Array.from([1, 1, 1, 2]) },
      { positions: 1, moeLayers: 2, topK: 2, experts: Uint8Array.from([0, 1, 1]) },
    ];
    for (const record of records)
      expect(codeOf(() => model.forward(tokens, { routing: record }))).toBe('ROUTING_SHAPE');
  });

  it('rejects weights that do not match the config with CHECKPOINT_INVALID, naming the weight', () => {
    const missing = cloneWeights(weights);
    missing.delete('model.layers.1.mlp.experts.3.up_proj.weight');
    const missingError = errorOf(() => createReferenceModel(config, missing));
    expect(missingError.code).toBe('CHECKPOINT_INVALID');
    expect(missingError.message).toContain('model.layers.1.mlp.experts.3.up_proj.weight');
    expect(missingError.details).toMatchObject({ weight: 'model.layers.1.mlp.experts.3.up_proj.weight' });

    const misshapen = cloneWeights(weights);
    misshapen.set('model.layers.0.self_attn.k_proj.weight', float32Tensor([8, 32]));
    const shapeError = errorOf(() => createReferenceModel(config, misshapen));
    expect(shapeError.code).toBe('CHECKPOINT_INVALID');
    expect(shapeError.message).toContain(
      'model.layers.0.self_attn.k_proj.weight: shape [8, 32], expected [16, 16]',
    );
    expect(shapeError.details).toMatchObject({ expected: [16, 16], found: [8, 32] });

    const wrongType = cloneWeights(weights);
    wrongType.set('model.norm.weight', { dtype: 'F16', shape: [16], data: new Uint16Array(16) });
    expect(errorOf(() => createReferenceModel(config, wrongType)).message).toContain(
      'model.norm.weight: dtype F16',
    );

    const extra = cloneWeights(weights);
    extra.set('model.layers.0.self_attn.q_proj.bias', float32Tensor([32]));
    const extraError = errorOf(() => createReferenceModel(config, extra));
    expect(extraError.code).toBe('CHECKPOINT_INVALID');
    expect(extraError.message).toContain('model.layers.0.self_attn.q_proj.bias: unexpected');

    // Tied embeddings: an lm_head is unexpected.
    const tiedExtra = createRandomWeights(tinyBiasedTiedConfig, 1);
    tiedExtra.set('lm_head.weight', float32Tensor([32, 16]));
    expect(codeOf(() => createReferenceModel(tinyBiasedTiedConfig, tiedExtra))).toBe('CHECKPOINT_INVALID');

    // Weights of another config.
    expect(codeOf(() => createReferenceModel(tinyDenseAndSparseConfig, weights))).toBe('CHECKPOINT_INVALID');
  });

  it('rejects an invalid config with CONFIG_INVALID', () => {
    expect(codeOf(() => createReferenceModel({ ...config, topK: 9 }, weights))).toBe('CONFIG_INVALID');
  });
});
