#!/usr/bin/env node
// Fails when a public package's source (packages/<dir>/src, tests and fixtures aside) changed between a base
// commit and HEAD while no changeset added or edited in that range names the package.
//
//   node scripts/check-changeset.mjs [--base <ref>] [--working-tree]
//
// The base is --base, else $MOERL_CHANGESET_BASE, else HEAD~1 (the commit before the one CI checks).
// --working-tree also counts uncommitted and untracked files: run it before committing.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasFrontMatter, isChangesetFile, packagesMissingChangesets } from './lib/changeset-rules.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
const lines = (text) => text.split('\n').filter(Boolean);

function parseArgs(argv) {
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: read by this CI script, never by a turbo task.
  const options = { base: process.env.MOERL_CHANGESET_BASE || 'HEAD~1', workingTree: false };
  for (let index = 0; index < argv.length; index++) {
    if (argv[index] === '--base') options.base = argv[++index];
    else if (argv[index] === '--working-tree') options.workingTree = true;
    else throw new Error(`check-changeset: unknown argument ${argv[index]}`);
  }
  return options;
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  let base;
  try {
    base = git('rev-parse', '--verify', '--quiet', `${options.base}^{commit}`);
  } catch {
    if (options.base === 'HEAD~1' && git('rev-list', '--count', 'HEAD') === '1') {
      console.log('check-changeset: HEAD is the first commit, nothing to compare with');
      return 0;
    }
    console.error(
      `check-changeset: base ${options.base} is not a commit here (a shallow clone needs full history)`,
    );
    return 1;
  }
  const range = options.workingTree ? [base] : [base, 'HEAD'];
  const changed = lines(git('diff', '--name-only', ...range));
  const changesetFiles = lines(git('diff', '--name-only', '--diff-filter=AM', ...range));
  if (options.workingTree) {
    const untracked = lines(git('ls-files', '--others', '--exclude-standard'));
    changed.push(...untracked);
    changesetFiles.push(...untracked);
  }
  // The files as they are at the end of the range: the working tree, or HEAD (which CI has checked out).
  const read = (file) =>
    options.workingTree ? readFileSync(join(root, file), 'utf8') : git('show', `HEAD:${file}`);
  const changesets = changesetFiles
    .filter(isChangesetFile)
    .filter((file) => (options.workingTree ? existsSync(join(root, file)) : true));
  const packages = new Map();
  for (const dir of readdirSync(join(root, 'packages'))) {
    const manifest = join(root, 'packages', dir, 'package.json');
    if (existsSync(manifest)) packages.set(dir, JSON.parse(readFileSync(manifest, 'utf8')));
  }
  const texts = changesets.map(read);
  const missing = packagesMissingChangesets(changed, packages, texts);
  const what = `${options.base}${options.workingTree ? '..working tree' : '..HEAD'}`;
  const malformed = changesets.filter((_, index) => !hasFrontMatter(texts[index]));
  for (const file of malformed) {
    console.error(
      `check-changeset: ${file} has no front matter (---, 'package': bump, ---); changesets cannot read it. If a formatter turned it into a "## " heading, restore it and keep a "# comment" line inside the front matter.`,
    );
  }
  if (malformed.length > 0) return 1;
  if (missing.size === 0) {
    console.log(
      `check-changeset: ok (${what}; ${changesets.length} changeset(s): ${changesets.join(', ') || 'none needed'})`,
    );
    return 0;
  }
  console.error(`check-changeset: public source changed in ${what} without a changeset naming the package:`);
  for (const [name, files] of missing) {
    console.error(
      `  ${name}: ${files.slice(0, 5).join(', ')}${files.length > 5 ? `, … (${files.length} files)` : ''}`,
    );
  }
  console.error(
    'Run `pnpm changeset`, pick the package(s) and the bump, and commit the generated .changeset/*.md.',
  );
  return 1;
}

try {
  process.exitCode = main();
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
}
