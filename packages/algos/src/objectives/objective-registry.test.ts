import type { Objective } from '@moerl/core';
import { describe, expect, it, vi } from 'vitest';
import { expectMoerlError, randomBatch } from '../__fixtures__/random-batch.js';
import { assertGradientMatches, checkObjectiveGradient } from '../gradient-check/gradient-check.js';
import { createObjectiveRegistry } from './objective-registry.js';
import { computePolicyObjective, preparePolicyObjective } from './policy-objective.js';

describe('objective registry', () => {
  const { batch, logprobs } = randomBatch(70, { sequences: 4, logRatioScale: 0.6 });
  const input = { logprobs: Float32Array.from(logprobs), sequenceOffsets: batch.sequenceOffsets };

  it('holds the built-ins by name', () => {
    expect(createObjectiveRegistry().list()).toEqual([
      'cispo',
      'dapo',
      'dr-grpo',
      'grpo',
      'gspo',
      'gspo-token',
      'icepop',
      'ppo-clip',
      'sapo',
    ]);
    expect(createObjectiveRegistry({ builtIns: false }).list()).toEqual([]);
  });

  it('icepop is ppo-clip with the [0.5, 5] band on π_old / π_engine; its gradient matches differences', () => {
    const registry = createObjectiveRegistry();
    const icepop = registry.create('icepop', { batch });
    const result = icepop.evaluate(input);
    // Naive: (1 / all loss tokens) Σ_t M(ρ_t) · ppo_t, M(ρ) = ρ inside [0.5, 5], else 0 (masked tokens
    // keep their place in the denominator, as in the IcePop objective and verl).
    let sum = 0;
    let count = 0;
    let outside = 0;
    for (let t = 0; t < input.logprobs.length; t++) {
      if (batch.responseMask[t] !== 1) continue;
      count++;
      const rho = Math.exp(batch.oldLogprobs[t]! - batch.engineLogprobs[t]!);
      if (rho < 0.5 || rho > 5) {
        outside++;
        continue;
      }
      const r = Math.exp(input.logprobs[t]! - batch.oldLogprobs[t]!);
      const a = batch.advantages[t]!;
      let l = Math.max(-a * r, -a * Math.min(1.2, Math.max(0.8, r)));
      if (a < 0) l = Math.min(l, -a * 3);
      sum += rho * l;
    }
    expect(outside).toBeGreaterThan(0);
    expect(result.loss).toBeCloseTo(sum / count, 6);
    expect(result.metrics!['rc/isOobRatio']).toBeCloseTo(outside / count, 12);
    expect(result.metrics!['rc/isOobRatio']).toBeGreaterThanOrEqual(0);
    assertGradientMatches(checkObjectiveGradient(icepop, input));
    expectMoerlError(
      () => {
        const { engineLogprobs: _unused, ...withoutEngine } = batch;
        return registry.create('icepop', { batch: withoutEngine });
      },
      'INVALID_ARGUMENT',
      'engineLogprobs',
    );
  });

  it('cispo and sapo: objective gradients match differences (cispo with its weights held fixed)', () => {
    const registry = createObjectiveRegistry();
    const sapo = registry.create('sapo', { batch, tauNeg: 2 });
    assertGradientMatches(checkObjectiveGradient(sapo, input));
    const cispo = registry.create('cispo', { batch });
    const prepared = preparePolicyObjective('cispo', batch, {});
    const loss = (x: ArrayLike<number>) =>
      prepared.evaluate(Float64Array.from(x), { stopGradientLogprobs: Float64Array.from(input.logprobs) })
        .loss;
    assertGradientMatches(checkObjectiveGradient(cispo, input, { loss }));
    expect(cispo.name).toBe('cispo');
  });

  it('grpo is ppo-clip; dapo and dr-grpo are ppo-clip with their defaults', () => {
    const registry = createObjectiveRegistry();
    const loss = (name: string) => registry.create(name, { batch }).evaluate(input).loss;
    expect(loss('grpo')).toBe(loss('ppo-clip'));
    expect(registry.create('grpo', { batch }).name).toBe('grpo');
    const reference = (config: object) =>
      computePolicyObjective('ppo-clip', batch, input.logprobs, config).loss;
    expect(loss('dapo')).toBe(reference({ clipRatioHigh: 0.28 }));
    expect(loss('dapo')).not.toBe(loss('ppo-clip'));
    expect(loss('dr-grpo')).toBe(reference({ lossAggMode: 'seq-mean-token-sum-norm' }));
    // Options given to create override a preset's defaults.
    expect(registry.create('dapo', { batch, clipRatioHigh: 0.2 }).evaluate(input).loss).toBe(
      loss('ppo-clip'),
    );
  });

  it('refuses duplicates unless asked to replace, and names unknown objectives', () => {
    const registry = createObjectiveRegistry();
    const stub = (): Objective => ({
      name: 'stub',
      evaluate: () => ({ loss: 0, gradient: new Float32Array(), metrics: {} }),
    });
    expectMoerlError(() => registry.register('gspo', stub), 'INVALID_ARGUMENT', 'name');
    registry.register('gspo', stub, { replace: true });
    expect(registry.create('gspo', { batch }).name).toBe('stub');
    expectMoerlError(() => registry.create('nope', { batch }), 'INVALID_ARGUMENT', 'name');
    expectMoerlError(() => registry.register('', stub), 'INVALID_ARGUMENT', 'name');
  });
});

describe('the process-wide objective registry', () => {
  it('is shared by a second copy of the module, as a plugin with its own install of @moerl/algos has', async () => {
    const first = await import('./objective-registry.js');
    vi.resetModules();
    const second = await import('./objective-registry.js');
    expect(second.registerObjective).not.toBe(first.registerObjective); // really two module instances
    const factory = () => ({
      name: 'second-copy',
      evaluate: () => ({ loss: 0, gradient: new Float32Array(), metrics: {} }),
    });
    second.registerObjective('second-copy', factory, { replace: true });
    expect(first.listObjectives()).toContain('second-copy');
    expect(first.listObjectives()).toContain('grpo');
    expect(first.createObjective('second-copy', { batch: randomBatch(3).batch }).name).toBe('second-copy');
    expect(Object.getOwnPropertySymbols(globalThis)).toContain(Symbol.for('moerl.objectives.v1'));
  });
});
