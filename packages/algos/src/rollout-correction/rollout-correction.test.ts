import { MoerlError } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { offPolicyMetrics } from './off-policy-metrics.js';
import { type RejectionOption, rolloutCorrection } from './rollout-correction.js';

// Two responses: tokens [0, 2) and [2, 6); token 5 is masked. Δ = trainer − engine = log ρ.
const offsets = [0, 2, 6];
const engine = [-1, -2, -0.5, -1, -3, -2];
const delta = [0.1, -0.2, 0.8, 0, -1.5, 4];
const trainer = engine.map((e, t) => e + delta[t]!);
const responseMask = [1, 1, 1, 1, 1, 0];
const input = { sequenceOffsets: offsets, trainerLogprobs: trainer, engineLogprobs: engine, responseMask };
const live = [0, 1, 2, 3, 4];
const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return MoerlError.isInstance(error) ? error.code : 'not a MoerlError';
  }
  return undefined;
}

describe('offPolicyMetrics', () => {
  it('matches hand values', () => {
    const m = offPolicyMetrics(input);
    const trainerMeans = [(trainer[0]! + trainer[1]!) / 2, (trainer[2]! + trainer[3]! + trainer[4]!) / 3];
    const engineMeans = [(engine[0]! + engine[1]!) / 2, (engine[2]! + engine[3]! + engine[4]!) / 3];
    expect(m.trainerPpl).toBeCloseTo(mean(trainerMeans.map((x) => Math.exp(-x))), 14);
    expect(m.trainerLogPpl).toBeCloseTo(-mean(trainerMeans), 14);
    expect(m.enginePpl).toBeCloseTo(mean(engineMeans.map((x) => Math.exp(-x))), 14);
    const diffs = [engineMeans[0]! - trainerMeans[0]!, engineMeans[1]! - trainerMeans[1]!];
    expect(m.logPplDiff).toBeCloseTo(mean(diffs), 14);
    expect(m.logPplAbsDiff).toBeCloseTo(mean(diffs.map(Math.abs)), 14);
    expect(m.logPplDiffMax).toBeCloseTo(Math.max(...diffs), 14);
    expect(m.pplRatio).toBeCloseTo(mean(diffs.map(Math.exp)), 14);
    const d = live.map((t) => delta[t]!);
    expect(m.kl).toBeCloseTo(-mean(d), 14);
    expect(m.k3Kl).toBeCloseTo(mean(d.map((x) => Math.exp(x) - x - 1)), 14);
    expect(m.chi2Token).toBeCloseTo(mean(d.map((x) => Math.exp(2 * x))) - 1, 13);
    expect(m.chi2Seq).toBeCloseTo(mean([Math.exp(2 * (0.1 - 0.2)), Math.exp(2 * (0.8 - 1.5))]) - 1, 13);
    expect(m.tokenMultProbError).toBeCloseTo(mean(d.map((x) => Math.exp(Math.abs(x)))), 14);
    expect([m.tokens, m.sequences]).toEqual([5, 2]);
  });

  it('is 1 / 0 where trainer and engine agree', () => {
    const m = offPolicyMetrics({
      sequenceOffsets: [0, 3],
      trainerLogprobs: [-1, -2, -3],
      engineLogprobs: [-1, -2, -3],
    });
    const values = [m.kl, m.k3Kl, m.chi2Token, m.chi2Seq, m.logPplDiff, m.tokenMultProbError, m.pplRatio];
    expect(values.map((v) => v + 0)).toEqual([0, 0, 0, 0, 0, 1, 1]);
  });
});

describe('rolloutCorrection: importance weights', () => {
  it('token TIS: min(ρ, C), 0 on masked tokens, with the IS diagnostics', () => {
    const { weights, mask, metrics } = rolloutCorrection(input, { is: { level: 'token', threshold: 2 } });
    const expected = delta.map((x, t) => (responseMask[t] === 1 ? Math.min(Math.exp(x), 2) : 0));
    weights!.forEach((w, t) => {
      expect(w).toBeCloseTo(expected[t]!, 14);
    });
    expect([...mask]).toEqual(responseMask);
    const applied = live.map((t) => expected[t]!);
    expect(metrics.isMean).toBeCloseTo(mean(applied), 14);
    expect(metrics.isMax).toBe(2);
    expect(metrics.isMin).toBeCloseTo(Math.exp(-1.5), 14);
    // Raw ρ above 2: token 2 (e^0.8 ≈ 2.23); below 1/2: token 4 (e^−1.5).
    expect(metrics.isRatioFractionHigh).toBeCloseTo(1 / 5, 14);
    expect(metrics.isRatioFractionLow).toBeCloseTo(1 / 5, 14);
    const m = mean(applied);
    expect(metrics.isStd).toBeCloseTo(Math.sqrt(mean(applied.map((w) => (w - m) ** 2))), 12);
    expect(metrics.isEffSampleSize).toBeCloseTo(1 / mean(applied.map((w) => (w / m) ** 2)), 12);
    const seqMeans = [mean([expected[0]!, expected[1]!]), mean([expected[2]!, expected[3]!, expected[4]!])];
    expect(metrics.isSeqMean).toBeCloseTo(mean(seqMeans), 14);
    expect(metrics.isSeqStd).toBeCloseTo(Math.abs(seqMeans[0]! - seqMeans[1]!) / Math.SQRT2, 12);
    expect(metrics.isSeqMaxDeviation).toBeCloseTo(Math.max(...seqMeans.map((s) => Math.abs(s - 1))), 14);
  });

  it('sequence level: every token gets Π ρ of its response, truncated at C', () => {
    const { weights, metrics } = rolloutCorrection(input, { is: { level: 'sequence', threshold: 5 } });
    const first = Math.exp(-0.1);
    const second = Math.exp(-0.7);
    expect([...weights!].map((w) => Number(w.toFixed(12)))).toEqual(
      [first, first, second, second, second, 0].map((w) => Number(w.toFixed(12))),
    );
    expect(metrics.isMax).toBeCloseTo(first, 14);
    expect(metrics.isMin).toBeCloseTo(second, 14);
    expect(metrics.isRatioFractionHigh).toBe(0);
  });

  it('IcePop band: weights outside [lower, upper] become 0, the others stay ρ', () => {
    const { weights, mask, metrics } = rolloutCorrection(input, {
      is: { level: 'token', threshold: 2, thresholdLower: 0.5 },
    });
    const expected = [Math.exp(0.1), Math.exp(-0.2), 0, 1, 0, 0];
    weights!.forEach((w, t) => {
      expect(w).toBeCloseTo(expected[t]!, 14);
    });
    expect([...mask]).toEqual(responseMask);
    expect(metrics.isOobRatio).toBeCloseTo(2 / 5, 14);
  });

  it('batch normalisation: token weights average to 1 over tokens, sequence weights over responses', () => {
    const token = rolloutCorrection(input, { is: { level: 'token', threshold: 2, batchNormalize: true } });
    expect(mean(live.map((t) => token.weights![t]!))).toBeCloseTo(1, 14);
    expect(token.metrics.isBatchNormFactor).toBeCloseTo(token.metrics.isMean!, 14);
    const sequence = rolloutCorrection(input, {
      is: { level: 'sequence', threshold: 5, batchNormalize: true },
    });
    expect((sequence.weights![0]! + sequence.weights![2]!) / 2).toBeCloseTo(1, 14);
  });
});

describe('rolloutCorrection: rejection', () => {
  const keptBy = (option: RejectionOption, upper: number, lower?: number) => [
    ...rolloutCorrection(input, { rejection: [{ option, upper, ...(lower === undefined ? {} : { lower }) }] })
      .mask,
  ];

  it('token_k1 bounds exp(k1) = π_engine / π_trainer; symmetric by default', () => {
    // ρ = e^Δ: tokens 2 (2.23) and 4 (0.22) leave [1/2, 2].
    expect(keptBy('token_k1', 2)).toEqual([1, 1, 0, 1, 0, 0]);
    // π_engine / π_trainer = e^−Δ in [0.9, 5]: token 0 (e^−0.1 ≈ 0.905) stays, token 2 (e^−0.8 ≈ 0.45) goes.
    expect(keptBy('token_k1', 5, 0.9)).toEqual([1, 1, 0, 1, 1, 0]);
  });

  it('token k2 / k3 and sequence sum, geometric mean and max', () => {
    // k2 = ½Δ²: 0.005, 0.02, 0.32, 0, 1.125.
    expect(keptBy('token_k2', 0.5)).toEqual([1, 1, 1, 1, 0, 0]);
    // Response 2: k3 = e^Δ − 1 − Δ: 0.4255, 0, 0.7231 → sum 1.149, mean 0.383, max 0.723.
    expect(keptBy('seq_sum_k3', 1)).toEqual([1, 1, 0, 0, 0, 0]);
    expect(keptBy('seq_mean_k3', 0.4)).toEqual([1, 1, 1, 1, 1, 0]);
    expect(keptBy('seq_mean_k3', 0.38)).toEqual([1, 1, 0, 0, 0, 0]);
    expect(keptBy('seq_max_k2', 1)).toEqual([1, 1, 0, 0, 0, 0]);
    // Geometric-mean ratio of response 2: e^(−0.7 / 3) ≈ 0.79, kept by [0.8, 1.25]? No.
    expect(keptBy('seq_mean_k1', 1.25)).toEqual([1, 1, 0, 0, 0, 0]);
  });

  it('combines criteria with AND and reports each one and the total', () => {
    const { mask, metrics } = rolloutCorrection(input, {
      rejection: [
        { option: 'token_k2', upper: 0.3 },
        { option: 'seq_max_k3', upper: 0.8 },
      ],
    });
    // token_k2 drops tokens 2 and 4; seq_max_k3 keeps both responses (max k3 0.723).
    expect([...mask]).toEqual([1, 1, 0, 1, 0, 0]);
    expect(metrics.rs_token_k2_maskedFraction).toBeCloseTo(2 / 5, 14);
    expect(metrics.rs_seq_max_k3_maskedFraction).toBe(0);
    expect(metrics.rsMaskedFraction).toBeCloseTo(2 / 5, 14);
    expect(metrics.rsSeqMaskedFraction).toBeCloseTo(1 / 2, 14);
  });

  it('rejected tokens lose their IS weight', () => {
    const { weights } = rolloutCorrection(input, {
      is: { level: 'token', threshold: 2 },
      rejection: [{ option: 'token_k1', upper: 2 }],
    });
    expect(weights![2]).toBe(0);
    expect(weights![4]).toBe(0);
    expect(weights![0]).toBeCloseTo(Math.exp(0.1), 14);
  });

  it('refuses bad configurations with INVALID_ARGUMENT naming the field', () => {
    const bad = (config: Parameters<typeof rolloutCorrection>[1]) =>
      codeOf(() => rolloutCorrection(input, config));
    expect(bad({ rejection: [{ option: 'token_k4' as RejectionOption, upper: 1 }] })).toBe(
      'INVALID_ARGUMENT',
    );
    expect(bad({ rejection: [{ option: 'seq_mean_k3', upper: 1, lower: 0.5 }] })).toBe('INVALID_ARGUMENT');
    expect(bad({ rejection: [] })).toBe('INVALID_ARGUMENT');
    expect(bad({ is: { level: 'geometric' as 'token' } })).toBe('INVALID_ARGUMENT');
    expect(bad({ is: { level: 'token', threshold: 2, thresholdLower: 3 } })).toBe('INVALID_ARGUMENT');
    expect(() => rolloutCorrection(input, { rejection: [{ option: 'seq_max_k2', upper: -1 }] })).toThrow(
      /rejection\[0\]\.upper/,
    );
    expect(codeOf(() => rolloutCorrection({ ...input, engineLogprobs: [0] }, {}))).toBe('INVALID_ARGUMENT');
  });
});
