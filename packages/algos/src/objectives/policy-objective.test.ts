import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  centralDifferences,
  expectAllClose,
  expectMoerlError,
  type RandomBatch,
  randomBatch,
} from '../__fixtures__/random-batch.js';
import { LOSS_AGG_MODES } from '../losses/loss-aggregation.js';
import { rolloutCorrection } from '../rollout-correction/rollout-correction.js';
import {
  computePolicyObjective,
  POLICY_LOSSES,
  type PolicyLossName,
  type PolicyObjectiveConfig,
  preparePolicyObjective,
} from './policy-objective.js';

function batchFor(algorithm: PolicyLossName, seed: number): RandomBatch {
  return algorithm === 'ppo-clip'
    ? randomBatch(seed, {
        sequences: 8,
        logRatioScale: 1.4,
        withMask: true,
        oneTokenSequence: true,
        tokenAdvantages: true,
      })
    : randomBatch(seed, {
        sequences: 10,
        logRatioScale: 3e-4,
        sequenceShift: 1e-3,
        withMask: true,
        oneTokenSequence: true,
        tokenAdvantages: true,
      });
}

const extras: ReadonlyArray<[string, PolicyObjectiveConfig]> = [
  ['plain', {}],
  [
    'k3 KL loss, token TIS, entropy bonus',
    {
      kl: { coefficient: 0.3, estimator: 'k3' },
      importanceSampling: { mode: 'truncate', level: 'token', threshold: 1.5 },
      entropyCoefficient: 0.01,
    },
  ],
  [
    'k2 KL loss, token MIS',
    { kl: { coefficient: 0.5, estimator: 'k2' }, importanceSampling: { mode: 'mask', threshold: 2 } },
  ],
  [
    'k1 KL loss, geometric MIS',
    {
      kl: { coefficient: 0.2, estimator: 'k1' },
      importanceSampling: { mode: 'mask', level: 'geometric', threshold: 1.3 },
    },
  ],
  [
    'abs KL loss, rollout correction (batch-normalised token TIS, seq_mean_k3 + token_k1 rejection)',
    {
      kl: { coefficient: 0.2, estimator: 'abs' },
      rolloutCorrection: {
        is: { level: 'token', threshold: 1.5, batchNormalize: true },
        rejection: [
          { option: 'seq_mean_k3', upper: 0.5 },
          { option: 'token_k1', upper: 3 },
        ],
      },
    },
  ],
];

describe('policy objective gradients', () => {
  for (const algorithm of POLICY_LOSSES) {
    for (const lossAggMode of LOSS_AGG_MODES) {
      for (const [label, extra] of extras) {
        it(`${algorithm}, ${lossAggMode}, ${label}: gradient equals central differences`, () => {
          const { batch, logprobs, entropy } = batchFor(algorithm, 40);
          const config: PolicyObjectiveConfig = { lossAggMode, clipRatioC: 2, ...extra };
          const prepared = preparePolicyObjective(algorithm, batch, config);
          const result = prepared.evaluate(logprobs, { entropy });
          // gspo-token's stop-gradient values stay at the evaluation point, as autograd would hold them.
          const loss = (x: Float64Array) =>
            prepared.evaluate(x, { entropy, stopGradientLogprobs: logprobs }).loss;
          const h = algorithm === 'ppo-clip' ? 1e-6 : 1e-7;
          expectAllClose(result.gradient, centralDifferences(loss, logprobs, h), 1e-5);
          expect(result.gradient.some((g) => g !== 0)).toBe(true);
          for (let t = 0; t < logprobs.length; t++) {
            if (batch.responseMask[t] === 0) expect(result.gradient[t]).toBe(0);
          }
          if (extra.entropyCoefficient !== undefined) {
            const entropyLoss = (e: Float64Array) => prepared.evaluate(logprobs, { entropy: e }).loss;
            expectAllClose(result.entropyGradient!, centralDifferences(entropyLoss, entropy), 1e-6);
          }
        });
      }
    }
  }

  it('defaults: token-mean for ppo-clip and cispo, seq-mean-token-mean for gspo, gspo-token and sapo', () => {
    const { batch, logprobs } = batchFor('gspo', 42);
    for (const algorithm of POLICY_LOSSES) {
      const tokenMean = algorithm === 'ppo-clip' || algorithm === 'cispo';
      const expectedMode = tokenMean ? 'token-mean' : 'seq-mean-token-mean';
      const otherMode = tokenMean ? 'seq-mean-token-mean' : 'token-mean';
      const byDefault = computePolicyObjective(algorithm, batch, logprobs).loss;
      expect(byDefault).toBe(
        computePolicyObjective(algorithm, batch, logprobs, { lossAggMode: expectedMode }).loss,
      );
      expect(byDefault).not.toBe(
        computePolicyObjective(algorithm, batch, logprobs, { lossAggMode: otherMode }).loss,
      );
    }
  });

  it('rolloutCorrection: the loss equals the plain loss with its weights and mask applied by hand', () => {
    const { batch, logprobs } = batchFor('ppo-clip', 44);
    const rc = {
      is: { level: 'sequence', threshold: 3, batchNormalize: true },
      rejection: [{ option: 'token_k2', upper: 0.3 }],
    } as const;
    const corrected = computePolicyObjective('ppo-clip', batch, logprobs, { rolloutCorrection: rc });
    const { weights, mask } = rolloutCorrection(
      {
        sequenceOffsets: batch.sequenceOffsets,
        trainerLogprobs: batch.oldLogprobs,
        engineLogprobs: batch.engineLogprobs,
        responseMask: batch.responseMask,
      },
      rc,
    );
    // Naive: token-mean over kept tokens of w_t · max(−A r, −A clip(r)) (dual clip with c = 3).
    let kept = 0;
    let sum = 0;
    for (let t = 0; t < logprobs.length; t++) {
      if (mask[t] !== 1) continue;
      kept++;
      const r = Math.exp(logprobs[t]! - batch.oldLogprobs[t]!);
      const a = batch.advantages[t]!;
      let l = Math.max(-a * r, -a * Math.min(1.2, Math.max(0.8, r)));
      if (a < 0) l = Math.min(l, -a * 3);
      sum += weights![t]! * l;
    }
    expect(corrected.loss).toBeCloseTo(sum / kept, 12);
    expect(corrected.metrics['rc/isBatchNormFactor']).toBeGreaterThan(0);
    expect(corrected.metrics['rc/tokenMultProbError']).toBeGreaterThanOrEqual(1);
    expectMoerlError(
      () =>
        computePolicyObjective('ppo-clip', batch, logprobs, {
          rolloutCorrection: rc,
          importanceSampling: { mode: 'truncate' },
        }),
      'INVALID_ARGUMENT',
      'rolloutCorrection',
    );
  });

  it('MIS that drops every token leaves a zero, finite loss with no gradient', () => {
    const { batch, logprobs } = batchFor('ppo-clip', 43);
    const engineLogprobs = Float64Array.from(batch.oldLogprobs, (old) => old - 5);
    const result = computePolicyObjective('ppo-clip', { ...batch, engineLogprobs }, logprobs, {
      importanceSampling: { mode: 'mask', threshold: 2 },
    });
    expect(result.loss).toBe(0);
    expect(result.gradient.every((g) => g === 0)).toBe(true);
    expect(result.metrics.isMaskedFraction).toBe(1);
    expect(result.metrics.lossTokens).toBe(0);
  });

  it('KL, IS and clip metrics are reported by name', () => {
    const { batch, logprobs } = batchFor('ppo-clip', 41);
    const result = computePolicyObjective('ppo-clip', batch, logprobs, {
      kl: { coefficient: 0.1 },
      importanceSampling: { mode: 'mask', threshold: 2 },
    });
    for (const key of [
      'loss',
      'pgLoss',
      'clipFraction',
      'lowerClipFraction',
      'approxKl',
      'klLoss',
      'isWeightMean',
      'isMaskedFraction',
      'isSequenceMaskedFraction',
    ]) {
      expect(result.metrics[key], key).toBeTypeOf('number');
    }
    expect(result.metrics.isMaskedFraction).toBeGreaterThan(0);
    expect(result.metrics.loss).toBeCloseTo(result.metrics.pgLoss! + 0.1 * result.metrics.klLoss!, 12);
  });
});

/** A ragged batch drawn by fast-check, with a mask that keeps the first token of every response. */
const arbitraryBatch = fc
  .array(
    fc.array(
      fc.record({
        old: fc.double({ min: -8, max: -0.01, noNaN: true }),
        delta: fc.double({ min: -1, max: 1, noNaN: true }),
        advantage: fc.double({ min: -3, max: 3, noNaN: true }),
        ref: fc.double({ min: -8, max: -0.01, noNaN: true }),
        engine: fc.double({ min: -8, max: -0.01, noNaN: true }),
        masked: fc.boolean(),
      }),
      { minLength: 1, maxLength: 6 },
    ),
    { minLength: 1, maxLength: 6 },
  )
  .map((responses) => {
    const tokens = responses.flat();
    const offsets = [0];
    for (const response of responses) offsets.push(offsets[offsets.length - 1]! + response.length);
    const firsts = new Set(offsets.slice(0, -1));
    return {
      batch: {
        sequenceOffsets: offsets,
        oldLogprobs: tokens.map((token) => token.old),
        advantages: tokens.map((token) => token.advantage),
        refLogprobs: tokens.map((token) => token.ref),
        engineLogprobs: tokens.map((token) => token.engine),
        responseMask: tokens.map((token, t) => (firsts.has(t) || !token.masked ? 1 : 0)),
      },
      logprobs: tokens.map((token) => token.old + token.delta),
    };
  });

const fullConfig: PolicyObjectiveConfig = {
  kl: { coefficient: 0.1, estimator: 'k3' },
  importanceSampling: { mode: 'truncate', level: 'token', threshold: 2 },
};

describe('policy objective properties', () => {
  it('with logp = old every ratio is 1: no clipping, approx KL 0', () => {
    fc.assert(
      fc.property(arbitraryBatch, fc.constantFrom(...POLICY_LOSSES), ({ batch }, algorithm) => {
        const result = computePolicyObjective(algorithm, batch, batch.oldLogprobs, fullConfig);
        expect(result.metrics.clipFraction).toBe(0);
        expect(result.metrics.lowerClipFraction).toBe(0);
        expect(result.metrics.approxKl).toBe(0);
      }),
    );
  });

  it("changing a masked token's values never changes the loss, and masked tokens get no gradient", () => {
    fc.assert(
      fc.property(
        arbitraryBatch,
        fc.constantFrom(...POLICY_LOSSES),
        fc.constantFrom(...LOSS_AGG_MODES),
        fc.double({ min: -50, max: 50, noNaN: true }),
        ({ batch, logprobs }, algorithm, lossAggMode, junk) => {
          const config = { ...fullConfig, lossAggMode };
          const before = computePolicyObjective(algorithm, batch, logprobs, config);
          const scramble = (values: number[]) =>
            values.map((value, t) => (batch.responseMask[t] === 0 ? junk - t : value));
          const changed = {
            ...batch,
            oldLogprobs: scramble(batch.oldLogprobs),
            advantages: scramble(batch.advantages),
            refLogprobs: scramble(batch.refLogprobs),
            engineLogprobs: scramble(batch.engineLogprobs),
          };
          const after = computePolicyObjective(algorithm, changed, scramble(logprobs), config);
          expect(after.loss).toBe(before.loss);
          batch.responseMask.forEach((m, t) => {
            if (m === 0) expect(after.gradient[t]).toBe(0);
          });
        },
      ),
    );
  });
});

describe('policy objective validation', () => {
  const { batch, logprobs } = randomBatch(50, { sequences: 3 });

  it('names every input of the wrong length', () => {
    for (const field of [
      'oldLogprobs',
      'advantages',
      'refLogprobs',
      'engineLogprobs',
      'responseMask',
    ] as const) {
      expectMoerlError(
        () => preparePolicyObjective('ppo-clip', { ...batch, [field]: batch[field].slice(1) }),
        'INVALID_ARGUMENT',
        field,
      );
    }
    expectMoerlError(
      () => preparePolicyObjective('ppo-clip', batch).evaluate(logprobs.slice(1)),
      'INVALID_ARGUMENT',
      'logprobs',
    );
    expectMoerlError(
      () => preparePolicyObjective('ppo-clip', { ...batch, sequenceOffsets: [0, 1] }),
      'INVALID_ARGUMENT',
      'oldLogprobs',
    );
    expectMoerlError(
      () => preparePolicyObjective('ppo-clip', { ...batch, sequenceOffsets: [0, 3, 2, logprobs.length] }),
      'INVALID_ARGUMENT',
      'sequenceOffsets',
    );
  });

  it('names every NaN or infinite input', () => {
    const poisoned = (values: Float64Array, value: number) => {
      const copy = Float64Array.from(values);
      copy[1] = value;
      return copy;
    };
    for (const field of ['oldLogprobs', 'advantages', 'refLogprobs', 'engineLogprobs'] as const) {
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        expectMoerlError(
          () => preparePolicyObjective('gspo', { ...batch, [field]: poisoned(batch[field], bad) }),
          'NON_FINITE',
          field,
        );
      }
    }
    expectMoerlError(
      () => preparePolicyObjective('gspo-token', batch).evaluate(poisoned(logprobs, Number.NaN)),
      'NON_FINITE',
      'logprobs',
    );
  });

  it('rejects a mask with no token, and a mask value other than 0 or 1', () => {
    const empty = new Uint8Array(logprobs.length);
    expectMoerlError(
      () => preparePolicyObjective('ppo-clip', { ...batch, responseMask: empty }),
      'INVALID_ARGUMENT',
      'responseMask',
    );
    const two = Uint8Array.from(batch.responseMask);
    two[0] = 2;
    expectMoerlError(
      () => preparePolicyObjective('ppo-clip', { ...batch, responseMask: two }),
      'INVALID_ARGUMENT',
      'responseMask',
    );
    expectMoerlError(
      () =>
        preparePolicyObjective('ppo-clip', {
          sequenceOffsets: [0],
          oldLogprobs: [],
          advantages: [],
        }),
      'INVALID_ARGUMENT',
      'responseMask',
    );
  });

  it('names missing reference or engine logprobs, and bad options', () => {
    const { refLogprobs: _ref, engineLogprobs: _engine, ...bare } = batch;
    expectMoerlError(
      () => preparePolicyObjective('ppo-clip', bare, { kl: { coefficient: 0.1 } }),
      'INVALID_ARGUMENT',
      'refLogprobs',
    );
    expectMoerlError(
      () => preparePolicyObjective('ppo-clip', bare, { importanceSampling: {} }),
      'INVALID_ARGUMENT',
      'engineLogprobs',
    );
    expectMoerlError(
      () => preparePolicyObjective('ppo-clip', batch, { clipRatioC: 1 }),
      'INVALID_ARGUMENT',
      'clipRatioC',
    );
    expectMoerlError(
      () => preparePolicyObjective('ppo-clip', batch, { clipRatioLow: Number.NaN }),
      'INVALID_ARGUMENT',
      'clipRatioLow',
    );
    expectMoerlError(
      () => preparePolicyObjective('ppo-clip', batch, { entropyCoefficient: 0.1 }).evaluate(logprobs),
      'INVALID_ARGUMENT',
      'entropy',
    );
  });
});
