import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readJsonLines, writeJsonLines } from './json-lines.js';
import { readMetrics } from './run-directory.js';

let directory = '';
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'moerl-json-lines-'));
});
afterAll(async () => rm(directory, { recursive: true, force: true }));

describe('JSON lines', () => {
  it('writes one object a line and reads them back, skipping blank lines', async () => {
    const path = join(directory, 'rows.jsonl');
    await writeJsonLines(path, [{ a: 1 }, { a: 2, b: 'x' }]);
    expect(await readFile(path, 'utf8')).toBe('{"a":1}\n{"a":2,"b":"x"}\n');
    await writeFile(path, '{"a":1}\n\n{"a":2}\n');
    expect(await readJsonLines(path)).toEqual([{ a: 1 }, { a: 2 }]);
  });

  it('names the line of the file (blank lines counted) that is not JSON', async () => {
    const path = join(directory, 'broken.jsonl');
    await writeFile(path, '{"a":1}\n\n{"a":\n');
    await expect(readJsonLines(path)).rejects.toThrow(/broken\.jsonl, line 3: not valid JSON/);
  });

  it('metrics rows read null back as NaN', async () => {
    const path = join(directory, 'metrics.jsonl');
    await writeFile(path, '{"step":1,"klFree":null}\n');
    expect((await readMetrics(path))[0]!.klFree).toBeNaN();
  });
});
