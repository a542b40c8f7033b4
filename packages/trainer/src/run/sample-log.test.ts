import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSamples, writeSamples } from './sample-log.js';

let directory = '';
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'moerl-samples-'));
});
afterAll(async () => rm(directory, { recursive: true, force: true }));

describe('samples.jsonl', () => {
  const row = {
    step: 1,
    id: 's1-p0-g0',
    prompt: 'abc<',
    response: 'cba',
    reward: 1,
    correct: true,
    finishReason: 'stop' as const,
  };

  it('round-trips rows, and reads a missing file as no rows', async () => {
    const path = join(directory, 'samples.jsonl');
    await writeSamples(path, [row, { ...row, step: 2, turns: 3 }]);
    expect(await readSamples(path)).toEqual([row, { ...row, step: 2, turns: 3 }]);
    expect(await readSamples(join(directory, 'absent.jsonl'))).toEqual([]);
  });

  it('names the file and line of a row that is not JSON', async () => {
    const path = join(directory, 'broken.jsonl');
    await writeFile(path, `${JSON.stringify(row)}\n{"step": 2, "prom\n`);
    await expect(readSamples(path)).rejects.toThrow(/broken\.jsonl, line 2: not valid JSON/);
  });
});
