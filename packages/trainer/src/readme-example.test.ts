import { readFile, rm } from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';
import { listTasks } from './tasks/task-registry.js';

const packageRoot = new URL('../', import.meta.url);

describe('README example: a user task', () => {
  it('is examples/custom-task.ts, and it registers the task and trains on it', async () => {
    const readme = await readFile(new URL('README.md', packageRoot), 'utf8');
    const example = await readFile(new URL('examples/custom-task.ts', packageRoot), 'utf8');
    expect(/```ts\n([\s\S]*?)```/.exec(readme)?.[1]).toBe(example);
    const lines: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((line: string) => void lines.push(line));
    try {
      await import('../examples/custom-task.js');
    } finally {
      log.mockRestore();
      await rm('.tmp/custom-task-run', { recursive: true, force: true });
    }
    expect(listTasks()).toContain('count-a');
    expect(lines[0]).toMatch(
      /^steps 2, last reward \d\.\d{3}, metrics in \.tmp\/custom-task-run\/metrics\.jsonl$/,
    );
  });
});

describe('README example: graded rewards', () => {
  it('is examples/graded-task.ts, and scores partial answers with the reward hook', async () => {
    const readme = await readFile(new URL('README.md', packageRoot), 'utf8');
    const example = await readFile(new URL('examples/graded-task.ts', packageRoot), 'utf8');
    expect([...readme.matchAll(/```ts\n([\s\S]*?)```/g)][1]?.[1]).toBe(example);
    const lines: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((line: string) => void lines.push(line));
    try {
      await import('../examples/graded-task.js');
    } finally {
      log.mockRestore();
    }
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/: reward 1\.00, correct true$/);
    expect(lines[1]).toMatch(/: reward 0\.(50|67|75), correct false$/);
  });
});
