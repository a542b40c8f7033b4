import { describe, expect, it } from 'vitest';
import { updateMetrics } from './update-metrics.js';

const result = (metrics: Record<string, number>, skipped = false) => ({
  loss: 0,
  gradNorm: 0,
  skipped,
  metrics,
});

describe('updateMetrics', () => {
  it('averages the objective metrics over applied updates and keeps the last learning rate', () => {
    expect(
      updateMetrics([
        result({ clipFraction: 0.2, entropy: 1, learningRate: 1e-3, routerAuxLoss: 5 }),
        result({ clipFraction: 100, learningRate: 9 }, true),
        result({ clipFraction: 0.4, entropy: Number.NaN, learningRate: 2e-3 }),
      ]),
    ).toEqual({ learningRate: 2e-3, objective: { clipFraction: 0.30000000000000004, entropy: 1 } });
  });

  it('leaves out what no update reported', () => {
    expect(updateMetrics([])).toEqual({});
    expect(updateMetrics([result({ learningRate: 1 }, true)])).toEqual({});
    expect(updateMetrics([result({ ratio: Number.NaN })])).toEqual({ objective: { ratio: Number.NaN } });
  });
});
