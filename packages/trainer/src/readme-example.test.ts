import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { resolveRunConfig } from './config/resolve-run-config.js';
import { preflightRun } from './run/preflight.js';
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

describe('root README: the first run a user writes', () => {
  it('its run.yaml is a valid config that passes every check a run makes before it starts', async () => {
    const readme = await readFile(new URL('../../README.md', packageRoot), 'utf8');
    const yaml = /Describe a run in a YAML file, `run.yaml`:\n\n```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(yaml).toBeDefined();
    const directory = await mkdtemp(join(tmpdir(), 'moerl-readme-'));
    try {
      const file = join(directory, 'run.yaml');
      await writeFile(file, yaml!);
      const config = await resolveRunConfig({ file });
      expect(config).toMatchObject({ name: 'first-run', replay: 'R3', task: { name: 'reverse-8' } });
      await expect(preflightRun(config)).resolves.toBeDefined();
      // The README promises a ten-line file.
      expect(yaml!.trim().split('\n').length).toBeLessThanOrEqual(10);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
