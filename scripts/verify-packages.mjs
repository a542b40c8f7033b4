#!/usr/bin/env node
// Proves every public package works the way a user gets it: built, packed, installed alone (with only the
// tarballs of the moerl packages it declares) into a fresh npm project, its README example run and
// type-checked there, and publint + attw run on the tarball. Then knip once for the repository.
//
//   node scripts/verify-packages.mjs [--only core,testkit] [--skip-build] [--no-knip] [--keep]
//
// Verified: every packages/*/package.json without "private": true and with a "build" script, so packages
// that land later are verified without editing this file, and every examples/* package with a "build"
// script and a "files" list (the custom backend and algorithm, written to be published from outside). `--only` (directory or package names) narrows
// the list while other packages are still being written; the tarballs their dependencies need are packed
// anyway.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  entryPointProblems,
  forbiddenFiles,
  importSpecifiers,
  packageNameOf,
  readmeExample,
  requiredWorkspaceDeps,
  undeclaredImports,
  unexpectedHeavyInstalls,
} from './lib/package-checks.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const PNPM = ['--yes', 'pnpm@10.34.9'];

function parseArgs(argv) {
  const options = { only: undefined, build: true, knip: true, keep: false };
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index];
    if (arg === '--only') options.only = argv[++index]?.split(',').filter(Boolean);
    else if (arg.startsWith('--only=')) options.only = arg.slice('--only='.length).split(',').filter(Boolean);
    else if (arg === '--skip-build') options.build = false;
    else if (arg === '--no-knip') options.knip = false;
    else if (arg === '--keep') options.keep = true;
    else throw new Error(`verify-packages: unknown argument ${arg}`);
  }
  return options;
}

/** Runs a command; returns { ok, output } with stdout and stderr together. */
function run(command, args, { cwd = root, timeout = 300_000, env = {}, unset = [] } = {}) {
  const childEnv = {
    ...process.env,
    npm_config_loglevel: 'error',
    npm_config_update_notifier: 'false',
    ...env,
  };
  for (const name of unset) delete childEnv[name];
  const result = spawnSync(command, args, {
    cwd,
    timeout,
    encoding: 'utf8',
    env: childEnv,
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? String(result.error) : ''}`;
  return { ok: result.status === 0, output };
}

const readIfPresent = (path) => (existsSync(path) ? readFileSync(path, 'utf8') : '');

function tail(text, lines = 25) {
  return text.trim().split('\n').slice(-lines).join('\n');
}

function workspacePackages() {
  const found = [];
  for (const folder of ['packages', 'examples']) {
    const directory = join(root, folder);
    if (!existsSync(directory)) continue;
    for (const name of readdirSync(directory)) {
      const path = join(directory, name, 'package.json');
      if (!existsSync(path)) continue;
      const manifest = JSON.parse(readFileSync(path, 'utf8'));
      found.push({
        dir: join(directory, name),
        rel: `${folder}/${name}`,
        short: name,
        name: manifest.name,
        manifest,
      });
    }
  }
  return found;
}

/**
 * What gets verified: every public package under packages/ with a build script, and every example built to
 * be copied and published as an outside package (a build script and a "files" list), e.g. the custom
 * backend and algorithm, which must work installed next to the published moerl packages alone.
 */
function isSubject(pkg) {
  if (typeof pkg.manifest.scripts?.build !== 'string') return false;
  return pkg.rel.startsWith('packages/') ? pkg.manifest.private !== true : Array.isArray(pkg.manifest.files);
}

function selectPackages(all, only) {
  const subjects = all.filter(isSubject);
  if (only === undefined) return subjects;
  const unknown = only.filter(
    (wanted) => !subjects.some((pkg) => pkg.short === wanted || pkg.name === wanted),
  );
  if (unknown.length > 0)
    throw new Error(`verify-packages: --only names no package to verify: ${unknown.join(', ')}`);
  return subjects.filter((pkg) => only.includes(pkg.short) || only.includes(pkg.name));
}

/** The package and every moerl package it needs, transitively, in dependency order. */
function closure(pkg, byName) {
  const seen = new Map();
  const visit = (current) => {
    for (const name of requiredWorkspaceDeps(current.manifest)) {
      const dep = byName.get(name);
      if (dep === undefined) throw new Error(`${current.name} depends on ${name}, which is not in packages/`);
      if (!seen.has(name)) {
        seen.set(name, dep);
        visit(dep);
      }
    }
  };
  visit(pkg);
  return [...seen.values()];
}

/**
 * The moerl packages to install beside `pkg`: the ones it needs, and the ones its README example imports
 * (a user following the README installs those too), each with what it needs in turn.
 */
function installSet(pkg, readme, byName) {
  const names = new Set(closure(pkg, byName).map((dep) => dep.name));
  const example = readmeExample(readme);
  const imported = example === undefined ? [] : importSpecifiers(example.code).map(packageNameOf);
  for (const name of imported) {
    if (name === undefined || name === pkg.name || !byName.has(name)) continue;
    names.add(name);
    for (const dep of closure(byName.get(name), byName)) names.add(dep.name);
  }
  names.delete(pkg.name);
  return names;
}

function pack(pkg, destination) {
  const before = new Set(readdirSync(destination));
  const result = run('npx', [...PNPM, 'pack', '--pack-destination', destination], { cwd: pkg.dir });
  if (!result.ok) throw new Error(`pnpm pack failed for ${pkg.name}:\n${tail(result.output)}`);
  const created = readdirSync(destination).filter((file) => !before.has(file) && file.endsWith('.tgz'));
  if (created.length !== 1) throw new Error(`pnpm pack of ${pkg.name} made ${created.length} tarballs`);
  return join(destination, created[0]);
}

/** Unpacks a tarball and returns its directory and file list (paths inside `package/`). */
function unpack(tarball, destination) {
  mkdirSync(destination, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', destination]);
  const packageDir = join(destination, 'package');
  const files = [];
  const walk = (directory) => {
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
      const path = join(directory, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.push(relative(packageDir, path));
    }
  };
  walk(packageDir);
  return { packageDir, files };
}

function contentProblems(unpacked) {
  const manifest = JSON.parse(readFileSync(join(unpacked.packageDir, 'package.json'), 'utf8'));
  const problems = [...forbiddenFiles(unpacked.files), ...entryPointProblems(manifest, unpacked.files)];
  if (!unpacked.files.includes('README.md')) problems.push('no README.md');
  const compiled = unpacked.files.filter(
    (file) => /\.(m?js|d\.m?ts)$/.test(file) && !file.startsWith('src/'),
  );
  const sources = new Map(
    compiled.map((file) => [file, readFileSync(join(unpacked.packageDir, file), 'utf8')]),
  );
  problems.push(...undeclaredImports(manifest, sources));
  return { manifest, problems };
}

const CONSUMER_TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    lib: ['ES2023'],
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    noEmit: true,
    // As `tsc --init` sets it: third-party declarations (tfjs-core's need DOM types) are not the subject.
    skipLibCheck: true,
    typeRoots: [join(root, 'node_modules', '@types')],
    types: ['node'],
  },
};

/** Installs the tarballs into a fresh npm project and runs the README example there. */
function tryAsUser(pkg, manifest, tarballs, readme, workDir) {
  const problems = [];
  const consumer = join(workDir, 'consumer');
  mkdirSync(consumer, { recursive: true });
  writeFileSync(
    join(consumer, 'package.json'),
    `${JSON.stringify({ name: `verify-${pkg.short}`, version: '0.0.0', private: true, type: 'module' }, null, 2)}\n`,
  );
  // Exactly as a user installs, with nothing set: no package may need a host other than the npm registry
  // (onnxruntime-node, whose install script downloads CUDA files from elsewhere, is an optional peer that
  // npm leaves out), so a variable that would skip such a download is removed, not set.
  const install = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...tarballs], {
    cwd: consumer,
    unset: ['ONNXRUNTIME_NODE_INSTALL', 'ONNXRUNTIME_NODE_INSTALL_CUDA'],
  });
  if (!install.ok) return [`npm install failed:\n${tail(install.output)}`];

  const installed = [];
  const modules = join(consumer, 'node_modules');
  for (const entry of readdirSync(modules)) {
    if (entry.startsWith('.')) continue;
    if (entry.startsWith('@'))
      for (const scoped of readdirSync(join(modules, entry))) installed.push(`${entry}/${scoped}`);
    else installed.push(entry);
  }
  const manifests = installed
    .filter((name) => name.startsWith('@moerl/'))
    .map((name) => JSON.parse(readFileSync(join(modules, name, 'package.json'), 'utf8')));
  for (const heavy of unexpectedHeavyInstalls(manifests, installed))
    problems.push(`installing it pulled in ${heavy}, a heavy optional peer it must only use when present`);

  const example = readmeExample(readme);
  if (example === undefined) return [...problems, 'README.md has no ```ts example'];
  const file = example.testFile ?? 'readme-example.ts';
  writeFileSync(join(consumer, file), example.code);
  writeFileSync(
    join(consumer, 'tsconfig.json'),
    JSON.stringify({ ...CONSUMER_TSCONFIG, include: [file] }, null, 2),
  );

  if (example.testFile !== undefined) {
    // A test example needs vitest, which the package takes as a peer: link the repository's copy, as a user
    // would `npm install -D vitest`.
    if (manifest.peerDependencies?.vitest === undefined && manifest.dependencies?.vitest === undefined) {
      problems.push(`the README example ${file} is a vitest test, but vitest is not declared`);
    }
    execFileSync('ln', ['-sfn', resolve(root, 'node_modules', 'vitest'), join(modules, 'vitest')]);
  }

  const typecheck = run(
    process.execPath,
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', consumer],
    {
      cwd: consumer,
    },
  );
  if (!typecheck.ok) problems.push(`the README example does not type-check:\n${tail(typecheck.output)}`);

  const execution =
    example.testFile !== undefined
      ? run(process.execPath, [join(modules, 'vitest', 'vitest.mjs'), 'run', '--root', consumer], {
          cwd: consumer,
        })
      : run(process.execPath, [join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs'), file], {
          cwd: consumer,
        });
  if (!execution.ok) problems.push(`the README example failed to run:\n${tail(execution.output)}`);
  return problems;
}

function lintTarball(tarball) {
  const problems = [];
  const publint = run(bin('publint'), ['run', tarball, '--strict']);
  if (!publint.ok || /\b(Errors?|Warnings?):/.test(publint.output))
    problems.push(`publint:\n${tail(publint.output)}`);
  // ESM-only packages: CommonJS resolution modes are not expected to work.
  const attw = run(bin('attw'), [
    tarball,
    '--profile',
    'esm-only',
    '--format',
    'ascii',
    '--no-emoji',
    '--no-color',
  ]);
  if (!attw.ok) problems.push(`attw:\n${tail(attw.output)}`);
  return problems;
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const all = workspacePackages();
  const byName = new Map(all.map((pkg) => [pkg.name, pkg]));
  const selected = selectPackages(all, options.only);
  if (selected.length === 0) throw new Error('verify-packages: no public package to verify');
  const needed = new Map();
  for (const pkg of selected) {
    const readme = readIfPresent(join(pkg.dir, 'README.md'));
    for (const name of [pkg.name, ...installSet(pkg, readme, byName)]) needed.set(name, byName.get(name));
  }

  if (options.build) {
    const filters = [...needed.keys()].map((name) => `--filter=${name}`);
    console.log(`building ${[...needed.keys()].join(', ')}`);
    // Through pnpm exec: turbo looks for the workspace's package manager on PATH, and a machine with only
    // Node and npm has pnpm only through npx.
    const build = run(
      'npx',
      [...PNPM, 'exec', 'turbo', 'run', 'build', ...filters, '--output-logs=errors-only'],
      {
        timeout: 900_000,
      },
    );
    if (!build.ok) {
      console.error(tail(build.output, 60));
      throw new Error('verify-packages: build failed');
    }
  }

  const workRoot = mkdtempSync(join(tmpdir(), 'moerl-verify-'));
  const tarballDir = join(workRoot, 'tarballs');
  mkdirSync(tarballDir);
  const tarballs = new Map();
  for (const pkg of needed.values()) tarballs.set(pkg.name, pack(pkg, tarballDir));

  const results = [];
  for (const pkg of selected) {
    const t0 = Date.now();
    const workDir = join(workRoot, pkg.short);
    const tarball = tarballs.get(pkg.name);
    const unpacked = unpack(tarball, join(workDir, 'unpacked'));
    const { manifest, problems } = contentProblems(unpacked);
    const readme = readIfPresent(join(unpacked.packageDir, 'README.md'));
    const companions = [...installSet(pkg, readme, byName)];
    const depTarballs = companions.map((name) => tarballs.get(name));
    problems.push(...tryAsUser(pkg, manifest, [tarball, ...depTarballs], readme, workDir));
    problems.push(...lintTarball(tarball));
    const seconds = ((Date.now() - t0) / 1000).toFixed(1);
    results.push({ name: pkg.name, problems });
    if (problems.length === 0) {
      console.log(
        `ok     ${pkg.name}: ${unpacked.files.length} files; installed with ${companions.join(', ') || 'no other moerl package'}; README example ran and type-checked; publint, attw clean (${seconds} s)`,
      );
    } else {
      console.log(`FAILED ${pkg.name} (${seconds} s)`);
      for (const problem of problems) console.log(`  - ${problem.replaceAll('\n', '\n    ')}`);
    }
  }

  let knipOk = true;
  if (options.knip) {
    // With --only, knip looks at the root, the examples and the chosen packages, not at packages in progress.
    const workspaces =
      options.only === undefined
        ? []
        : ['.', 'examples/*', ...selected.map((pkg) => pkg.rel)].flatMap((name) => ['--workspace', name]);
    const knip = run(bin('knip'), ['--no-progress', ...workspaces]);
    knipOk = knip.ok;
    console.log(
      knipOk
        ? 'ok     knip: no unused files, exports or dependencies'
        : `FAILED knip:\n${tail(knip.output, 60)}`,
    );
  }

  if (options.keep) console.log(`kept ${workRoot}`);
  else rmSync(workRoot, { recursive: true, force: true });
  const packagesOk = results.filter((result) => result.problems.length === 0).length;
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  const knipNote = options.knip ? `, knip ${knipOk ? 'ok' : 'FAILED'}` : '';
  console.log(`verify:packages: ${packagesOk} of ${results.length} packages ok${knipNote} (${seconds} s)`);
  process.exitCode = packagesOk === results.length && knipOk ? 0 : 1;
}

try {
  main();
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
}
