import { readFile } from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';

const packageRoot = new URL('../', import.meta.url);

describe('README example', () => {
  it('is the runnable examples/prefix-reuse.ts, and it reuses the prompt for every later sample', async () => {
    const readme = await readFile(new URL('README.md', packageRoot), 'utf8');
    const example = await readFile(new URL('examples/prefix-reuse.ts', packageRoot), 'utf8');
    const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBe(example);
    const lines: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((line: string) => void lines.push(line));
    try {
      await import('../examples/prefix-reuse.js');
    } finally {
      log.mockRestore();
    }
    expect(lines.slice(0, 4)).toEqual([
      'sample 0: 0 prompt tokens from the cache, routing of 7 positions',
      'sample 1: 4 prompt tokens from the cache, routing of 7 positions',
      'sample 2: 4 prompt tokens from the cache, routing of 7 positions',
      'sample 3: 4 prompt tokens from the cache, routing of 7 positions',
    ]);
    // 4 matches of 4 tokens, 3 of them served; every entry created (7 + 3 × 3) comes back exactly once.
    expect(lines[4]).toBe('hit rate 0.75; 16 of 16 KV entries freed');
  });
});
