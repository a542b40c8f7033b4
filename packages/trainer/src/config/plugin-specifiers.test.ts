import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importPlugins } from '../run/preflight.js';
import { resolvePluginSpecifier } from './plugin-specifiers.js';
import { resolveRunConfig } from './resolve-run-config.js';

let root = '';
const url = (...parts: string[]) => pathToFileURL(join(root, ...parts)).href;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'moerl-plugins-'));
  // A project: its config in configs/, a local plugin beside it, and an installed package whose
  // `./register` export exists only under the `import` condition.
  const installed = join(root, 'node_modules', '@acme', 'moerl-plugin');
  await mkdir(join(installed, 'dist'), { recursive: true });
  await mkdir(join(root, 'configs'), { recursive: true });
  await writeFile(
    join(installed, 'package.json'),
    JSON.stringify({
      name: '@acme/moerl-plugin',
      type: 'module',
      exports: { '.': './dist/index.js', './register': { types: './x.d.ts', import: './dist/register.js' } },
    }),
  );
  await writeFile(join(installed, 'dist', 'register.js'), 'globalThis.__moerlPluginTest = "installed";\n');
  await writeFile(join(root, 'configs', 'local-plugin.mjs'), 'globalThis.__moerlPluginTestLocal = true;\n');
  await writeFile(
    join(root, 'configs', 'run.yaml'),
    'plugins: ["./local-plugin.mjs", "@acme/moerl-plugin/register", "moerl-not-installed"]\n',
  );
});
afterAll(async () => rm(root, { recursive: true, force: true }));

describe('plugins resolve from the config file, not from the trainer', () => {
  it('anchors paths to the config file’s directory and package names to its node_modules', async () => {
    const config = await resolveRunConfig({ file: join(root, 'configs', 'run.yaml') });
    expect(config.plugins).toEqual([
      url('configs', 'local-plugin.mjs'),
      url('node_modules', '@acme', 'moerl-plugin', 'dist', 'register.js'),
      'moerl-not-installed', // not installed there: left for import() to report
    ]);
    await importPlugins(config.plugins.slice(0, 2));
    const holder = globalThis as { __moerlPluginTest?: string; __moerlPluginTestLocal?: boolean };
    expect(holder.__moerlPluginTest).toBe('installed');
    expect(holder.__moerlPluginTestLocal).toBe(true);
  });

  it('anchors --set paths to the working directory, and leaves URLs alone', async () => {
    const config = await resolveRunConfig({ overrides: ['plugins=["./my-plugin.mjs"]'] });
    expect(config.plugins).toEqual([pathToFileURL(resolve('my-plugin.mjs')).href]);
    expect(resolvePluginSpecifier('file:///x/y.js', root)).toBe('file:///x/y.js');
    expect(resolvePluginSpecifier('@acme/moerl-plugin', join(root, 'configs'))).toBe(
      url('node_modules', '@acme', 'moerl-plugin', 'dist', 'index.js'),
    );
    // A subpath the exports map does not list is not guessed.
    expect(resolvePluginSpecifier('@acme/moerl-plugin/secret', root)).toBe('@acme/moerl-plugin/secret');
  });
});
