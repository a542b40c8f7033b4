import { readFile } from 'node:fs/promises';
import { MoerlError, writeFileAtomic } from '@moerl/core';

type Replacer = (key: string, value: unknown) => unknown;

/** Writes one JSON object a line, atomically (the run's logs are rewritten whole after every step). */
export async function writeJsonLines(
  path: string,
  rows: readonly unknown[],
  replacer?: Replacer,
): Promise<void> {
  await writeFileAtomic(path, rows.map((row) => `${JSON.stringify(row, replacer)}\n`).join(''));
}

/** The objects of a JSON-lines file, blank lines skipped; a line that is not JSON is an IO_ERROR naming it. */
export async function readJsonLines<T>(path: string, reviver?: Replacer): Promise<T[]> {
  const text = await readFile(path, 'utf8');
  return text.split('\n').flatMap((line, index) => {
    if (line.trim() === '') return [];
    try {
      return [JSON.parse(line, reviver) as T];
    } catch (error) {
      throw new MoerlError(
        'IO_ERROR',
        `${path}, line ${index + 1}: not valid JSON (${(error as Error).message})`,
        { cause: error, details: { path, line: index + 1 } },
      );
    }
  });
}
