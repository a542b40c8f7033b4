// node --test scripts/lib/package-checks.test.mjs
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  entryPointProblems,
  forbiddenFiles,
  importSpecifiers,
  packageNameOf,
  readmeExample,
  requiredWorkspaceDeps,
  undeclaredImports,
  unexpectedHeavyInstalls,
} from './package-checks.mjs';

const manifest = {
  name: '@moerl/demo',
  exports: {
    './package.json': './package.json',
    '.': { '@moerl/source': './src/index.ts', types: './dist/index.d.ts', import: './dist/index.js' },
    './extra': { import: './dist/extra.js' },
  },
  dependencies: { '@moerl/core': '^0.0.0' },
  peerDependencies: { vitest: '>=3', '@moerl/testkit': '^0.0.0', 'onnxruntime-node': '*' },
  peerDependenciesMeta: { vitest: { optional: true }, 'onnxruntime-node': { optional: true } },
};

describe('forbiddenFiles', () => {
  it('flags tests, fixtures and reports, and lets sources and declarations through', () => {
    const found = forbiddenFiles([
      'dist/index.js',
      'dist/index.d.ts',
      'src/index.ts',
      'src/cache.test.ts',
      'dist/cache.test.js',
      'src/__fixtures__/batch.ts',
      '.vitest-report.json',
      'dist/contest.js',
    ]);
    assert.deepEqual(found, [
      'src/cache.test.ts (a test file)',
      'dist/cache.test.js (a test file)',
      'src/__fixtures__/batch.ts (a test fixture)',
      '.vitest-report.json (a test report)',
    ]);
  });
});

describe('entryPointProblems', () => {
  it('names missing targets and JavaScript entry points without types', () => {
    const problems = entryPointProblems(manifest, [
      'package.json',
      'dist/index.js',
      'src/index.ts',
      'dist/extra.js',
    ]);
    assert.deepEqual(problems, [
      '. [types] points at dist/index.d.ts, not in the tarball',
      './extra has JavaScript but no "types" condition',
    ]);
  });

  it('is satisfied by a complete package', () => {
    const complete = { ...manifest, exports: { '.': manifest.exports['.'] } };
    assert.deepEqual(entryPointProblems(complete, ['dist/index.js', 'dist/index.d.ts', 'src/index.ts']), []);
  });
});

describe('imports', () => {
  it('finds static, side-effect, dynamic and re-export specifiers, not those in comments', () => {
    const source = [
      "import { a } from '@moerl/core';",
      'import type { B } from "vitest";',
      "import './side-effect.js';",
      "export { c } from './c.js';",
      "export * from 'node:fs';",
      "const lazy = await import('onnxruntime-node');",
      "// import x from 'commented-out';",
      "/* import y from 'block-comment'; */",
      // Compiled code that builds a message around a template placeholder.
      ['throw new Error(`plugins: cannot import "', '${', 'plugin}": not found`);'].join(''),
      'const message = \'run import "left-pad" first\';',
    ].join('\n');
    assert.deepEqual(importSpecifiers(source).sort(), [
      './c.js',
      './side-effect.js',
      '@moerl/core',
      'node:fs',
      'onnxruntime-node',
      'vitest',
    ]);
  });

  it('maps specifiers to package names and skips relative paths and builtins', () => {
    assert.equal(packageNameOf('@moerl/testkit/vitest'), '@moerl/testkit');
    assert.equal(packageNameOf('lodash/fp'), 'lodash');
    assert.equal(packageNameOf('./x.js'), undefined);
    assert.equal(packageNameOf('fs/promises'), undefined);
    assert.equal(packageNameOf('node:path'), undefined);
  });

  it('reports a package imported but not declared', () => {
    const sources = new Map([
      ['dist/index.js', "import { x } from '@moerl/core';\nimport { y } from '@moerl/router-cache';"],
      ['dist/lazy.js', "await import('onnxruntime-node');"],
    ]);
    assert.deepEqual(undeclaredImports(manifest, sources), [
      'dist/index.js imports @moerl/router-cache, not declared',
    ]);
  });
});

describe('readmeExample', () => {
  it('takes the first ts block and notices a test file named on its first line', () => {
    const readme =
      '# x\n\n```sh\nnpm i x\n```\n\n```ts\n// my.conformance.test.ts\nrun();\n```\n\n```ts\nlater();\n```\n';
    assert.deepEqual(readmeExample(readme), {
      code: '// my.conformance.test.ts\nrun();\n',
      testFile: 'my.conformance.test.ts',
    });
    assert.deepEqual(readmeExample('```ts\nconsole.log(1);\n```'), {
      code: 'console.log(1);\n',
      testFile: undefined,
    });
    assert.equal(readmeExample('no code here'), undefined);
  });
});

describe('dependencies', () => {
  it('installs moerl dependencies and required peers, not optional peers', () => {
    assert.deepEqual(requiredWorkspaceDeps(manifest), ['@moerl/core', '@moerl/testkit']);
  });

  it('flags a heavy package that no installed moerl package depends on', () => {
    assert.deepEqual(unexpectedHeavyInstalls([manifest], ['@moerl/core', 'onnxruntime-node']), [
      'onnxruntime-node',
    ]);
    // Declared by a moerl package installed beside it (a trainer depending on the onnx backend): expected.
    const backend = { name: '@moerl/backend-onnx', dependencies: { 'onnxruntime-node': '1' } };
    assert.deepEqual(unexpectedHeavyInstalls([manifest, backend], ['onnxruntime-node']), []);
  });
});
