import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { MoerlError } from '../errors/moerl-error.js';

/**
 * Writes `data` to `path` so that readers see either the old file or the complete new one, never a torn
 * write: the bytes go to a temp file in the same directory, are flushed, the temp file is renamed over the
 * target, and the directory is flushed so the rename itself survives a crash. On failure the temp file is
 * removed and the original is untouched; the error (`IO_ERROR`) names `path` and what the system said.
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
    // Best effort: when the directory itself is the problem (missing, a file), there is nothing to remove,
    // and the cleanup's own error must not hide the one that matters.
    await rm(temporary, { force: true }).catch(() => {});
    throw new MoerlError('IO_ERROR', `Could not write ${path} atomically: ${(error as Error).message}`, {
      cause: error,
      details: { path },
    });
  }
  await syncDirectory(dirname(path));
}

/** Flushes a directory's entries (a rename) to disk. Platforms that cannot open a directory skip it. */
async function syncDirectory(directory: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(directory, 'r');
  } catch {
    return;
  }
  try {
    await handle.sync();
  } catch {
    // EINVAL/EPERM/EISDIR on file systems and platforms (Windows) that do not sync directories.
  } finally {
    await handle.close();
  }
}
