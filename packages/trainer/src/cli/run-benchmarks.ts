import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MoerlError } from '@moerl/core';

/** The moerl checkout holding `start`, if any (the benchmarks live there, not in the published packages). */
export function workspaceRoot(start: string): string | undefined {
  for (let directory = start; ; directory = dirname(directory)) {
    if (existsSync(join(directory, 'pnpm-workspace.yaml'))) return directory;
    if (dirname(directory) === directory) return undefined;
  }
}

/** Runs the `bench` script of every workspace package that has one (benchmarks live in the monorepo). */
export async function runBenchmarks(options: {
  readonly quick: boolean;
  readonly only?: readonly string[];
}): Promise<number> {
  const root = workspaceRoot(process.cwd());
  if (root === undefined) {
    throw new MoerlError(
      'UNSUPPORTED',
      'moerl bench runs the benchmarks of a moerl checkout; run it inside the repository',
    );
  }
  let failures = 0;
  for (const entry of (await readdir(join(root, 'packages'))).sort()) {
    const manifest = join(root, 'packages', entry, 'package.json');
    if (!existsSync(manifest)) continue;
    const pkg = JSON.parse(await readFile(manifest, 'utf8')) as {
      name: string;
      scripts?: Record<string, string>;
    };
    const script = pkg.scripts?.bench;
    if (script === undefined || (options.only !== undefined && !options.only.includes(entry))) continue;
    process.stdout.write(`\n=== ${pkg.name}: ${script}${options.quick ? ' --quick' : ''}\n`);
    const code = await new Promise<number>((resolve) => {
      const child = spawn(`${script}${options.quick ? ' --quick' : ''}`, {
        cwd: join(root, 'packages', entry),
        shell: true,
        stdio: 'inherit',
        env: { ...process.env, PATH: `${join(root, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` },
      });
      child.on('close', (exitCode) => resolve(exitCode ?? 1));
    });
    if (code !== 0) failures++;
  }
  return failures;
}
