import { describe, expect, it } from 'vitest';
import { tinyRun } from '../__fixtures__/tiny-run.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { precisionPanel, precisionPanelTable } from './precision-panel.js';

describe('precision panel (smoke run on a tiny model)', () => {
  it('measures fp32 as the no-mismatch control and FP8 as a real mismatch, on the same prompts', async () => {
    const config = await resolveRunConfig({
      config: { ...tinyRun, backends: { trainer: 'auto', engine: 'auto' } },
    });
    const result = await precisionPanel({
      config,
      prompts: 3,
      variants: [
        { name: 'fp32', precision: 'fp32' },
        { name: 'fp8 tensor + gate', precision: 'fp8', fp8: { scheme: 'tensor', quantizeRouterGate: true } },
      ],
    });
    const [fp32, fp8] = result.rows;
    expect(result.samplesPerPrompt).toBe(4);
    expect(fp32!.tokens).toBeGreaterThan(0);
    // fp32 engine vs fp32 trainer: same routing, logprobs equal up to summation order.
    expect(fp32!.tokensWithRoutingDifference).toBe(0);
    expect(fp32!.klFree).toBeLessThan(1e-8);
    expect(fp32!.maxAbsDeltaReplay).toBeLessThan(1e-3);
    // FP8 with a quantised router: the engine's logprobs move away from the trainer's.
    expect(fp8!.klReplay).toBeGreaterThan(100 * fp32!.klReplay);
    expect(fp8!.absDeltaQuantilesReplay.p99).toBeGreaterThan(fp32!.absDeltaQuantilesReplay.p99);
    const table = precisionPanelTable(result.rows);
    expect(table).toContain('fp8 tensor + gate');
    expect(table.split('\n')).toHaveLength(4);
  });
});
