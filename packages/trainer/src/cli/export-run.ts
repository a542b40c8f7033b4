import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MODEL_WEIGHTS_FILE, MoerlError, readHfConfigFile } from '@moerl/core';
import { validateRunConfig } from '../config/resolve-run-config.js';
import { assertRunDirectory, readLatestCheckpoint, runPaths } from '../run/run-directory.js';

/** Tokenizer files a Hugging Face model directory carries, copied when the run's tokenizer has them. */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

/**
 * Writes the latest checkpoint of a run as a clean Hugging Face model directory: config.json and
 * model.safetensors (no optimizer state, no trainer state), plus the tokenizer files of the run's
 * `task.dataset.tokenizer` when it has one, so Hugging Face, vLLM and SGLang load it as it is. The directory
 * is written beside `out` and renamed into place; an `out` that holds files is refused unless `force`.
 */
export async function exportRun(
  runDirectory: string,
  out: string,
  options: { readonly force?: boolean } = {},
): Promise<string[]> {
  const paths = runPaths(runDirectory);
  await assertRunDirectory(paths, 'export');
  const config = validateRunConfig(JSON.parse(await readFile(paths.config, 'utf8')), paths.config);
  const { trainerDirectory } = await readLatestCheckpoint(paths);
  if (existsSync(out) && (await readdir(out)).length > 0 && options.force !== true) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `${out} already holds files; choose another --out or pass --force`,
      {
        details: { path: out },
      },
    );
  }
  // The checkpoint's config must read back as a model before anything is written.
  await readHfConfigFile(join(trainerDirectory, 'config.json'));
  const sources: [string, string][] = [
    [join(trainerDirectory, 'config.json'), 'config.json'],
    [join(trainerDirectory, MODEL_WEIGHTS_FILE), MODEL_WEIGHTS_FILE],
  ];
  const tokenizer = config.task.dataset?.tokenizer;
  if (tokenizer !== undefined) {
    for (const file of TOKENIZER_FILES) {
      if (existsSync(join(tokenizer, file))) sources.push([join(tokenizer, file), file]);
    }
  }
  const temporary = `${out}.${process.pid}.tmp`;
  await rm(temporary, { recursive: true, force: true });
  await mkdir(temporary, { recursive: true });
  try {
    for (const [from, name] of sources) await copyFile(from, join(temporary, name));
    await rm(out, { recursive: true, force: true });
    await rename(temporary, out);
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    throw new MoerlError('IO_ERROR', `Could not write ${out}: ${(error as Error).message}`, {
      cause: error,
      details: { path: out },
    });
  }
  return sources.map(([, name]) => name);
}
