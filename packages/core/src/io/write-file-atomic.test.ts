import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MoerlError } from '../errors/moerl-error.js';
import { writeFileAtomic } from './write-file-atomic.js';

/** Every `open` call, so a test can see the directory being opened for its flush. */
const opened = vi.hoisted(() => [] as [unknown, unknown][]);
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...actual,
    open: (...args: Parameters<typeof actual.open>) => {
      opened.push([args[0], args[1]]);
      return actual.open(...args);
    },
  };
});

let root = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'moerl-atomic-'));
});
afterAll(async () => rm(root, { recursive: true, force: true }));

describe('writeFileAtomic', () => {
  it('replaces a file and leaves no temporary behind', async () => {
    const path = join(root, 'a.json');
    await writeFileAtomic(path, 'one');
    await writeFileAtomic(path, new TextEncoder().encode('two'));
    expect(await readFile(path, 'utf8')).toBe('two');
    expect(await readdir(root)).toEqual(['a.json']);
  });

  it('under a regular file: IO_ERROR naming the path, not the cleanup’s error', async () => {
    const file = join(root, 'plain-file');
    await writeFile(file, 'x');
    const path = join(file, 'report.html');
    const error = await writeFileAtomic(path, 'data').catch((caught: unknown) => caught);
    expect(MoerlError.isInstance(error, 'IO_ERROR')).toBe(true);
    expect((error as MoerlError).message).toMatch(
      new RegExp(`^Could not write ${path.replaceAll('/', '\\/')} atomically: ENOTDIR`),
    );
    expect((error as MoerlError).details).toEqual({ path });
  });

  it('in a missing directory: IO_ERROR naming the path', async () => {
    const path = join(root, 'missing', 'x.json');
    await expect(writeFileAtomic(path, 'data')).rejects.toMatchObject({
      code: 'IO_ERROR',
      message: expect.stringContaining(`Could not write ${path} atomically: ENOENT`),
    });
  });

  it('flushes the directory after the rename', async () => {
    opened.length = 0;
    await writeFileAtomic(join(root, 'synced.json'), '{}');
    expect(opened).toEqual([
      [expect.stringMatching(/\.synced\.json\.\d+\.[0-9a-f]+\.tmp$/), 'wx'],
      [root, 'r'],
    ]);
  });
});
