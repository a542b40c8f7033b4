import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runRoutingSummary } from './routing-summary.js';

describe('routing summary (the interim main job)', () => {
  const directories: string[] = [];
  afterAll(async () => {
    for (const directory of directories) await rm(directory, { recursive: true, force: true });
  });

  it('writes a checkpoint, reads it back, and shows replay closing the engine-trainer gap', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'moerl-demo-'));
    directories.push(directory);
    const summary = await runRoutingSummary({ directory });
    expect((await readdir(directory)).sort()).toEqual(['config.json', 'model.safetensors']);
    expect(summary.trajectories).toBe(16);
    expect(summary.routingBytes).toBe(summary.routedPositions * 3 * 2);
    for (const load of summary.expertLoad)
      expect(load.reduce((a, b) => a + b, 0)).toBe(summary.routedPositions * 2);
    // bf16 rounding flips some routing decisions, and replaying them removes the largest gaps.
    expect(summary.positionsWithAnyDifference).toBeGreaterThan(0);
    expect(summary.maxGapReplay).toBeLessThan(summary.maxGapFree);
    expect(summary.meanGapReplay).toBeLessThan(summary.meanGapFree);
  });
});
