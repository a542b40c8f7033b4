import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { MoerlError } from '../errors/moerl-error.js';

/**
 * Writes `data` to `path` so that readers see either the old file or the complete new one, never a torn
 * write: the bytes go to a temp file in the same directory, are flushed, and the temp file is renamed over
 * the target. On failure the temp file is removed and the original is untouched.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temporary = join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
  );
  try {
    const handle = await open(temporary, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw new MoerlError('IO_ERROR', `Could not write ${path} atomically: ${(error as Error).message}`, {
      cause: error,
      details: { path },
    });
  }
}
