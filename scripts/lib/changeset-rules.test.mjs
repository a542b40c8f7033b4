// node --test scripts/lib/changeset-rules.test.mjs
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  changesetPackages,
  hasFrontMatter,
  isChangesetFile,
  packagesMissingChangesets,
  publicSourceDir,
} from './changeset-rules.mjs';

const packages = new Map([
  ['core', { name: '@moerl/core' }],
  ['algos', { name: '@moerl/algos' }],
  ['secret', { name: '@moerl/secret', private: true }],
]);

describe('changeset rules', () => {
  it('counts package sources, not tests, fixtures or files outside src', () => {
    assert.equal(publicSourceDir('packages/core/src/index.ts'), 'core');
    assert.equal(publicSourceDir('packages/core/src/routing/routing-record.test.ts'), undefined);
    assert.equal(publicSourceDir('packages/algos/src/__fixtures__/random-batch.ts'), undefined);
    assert.equal(publicSourceDir('packages/core/README.md'), undefined);
    assert.equal(publicSourceDir('examples/custom-backend/src/index.ts'), undefined);
  });

  it('recognises changeset files and the packages they bump', () => {
    assert.equal(isChangesetFile('.changeset/brave-cats.md'), true);
    assert.equal(isChangesetFile('.changeset/README.md'), false);
    assert.equal(isChangesetFile('.changeset/config.json'), false);
    assert.deepEqual(
      changesetPackages('---\n\'@moerl/core\': minor\n"@moerl/algos": patch\n---\n\nText: minor\n'),
      ['@moerl/core', '@moerl/algos'],
    );
    assert.deepEqual(changesetPackages('no front matter'), []);
  });

  it('accepts front matter with blank and comment lines, and spots the heading biome makes of it', () => {
    const commented = "---\n\n'@moerl/algos': minor\n\n# keeps biome from making a heading\n\n---\n\nText.\n";
    assert.equal(hasFrontMatter(commented), true);
    assert.deepEqual(changesetPackages(commented), ['@moerl/algos']);
    const mangled = "---\n\n## '@moerl/algos': minor\n\nText.\n";
    assert.equal(hasFrontMatter(mangled), false);
    assert.deepEqual(changesetPackages(mangled), []);
  });

  it('names each public package changed without a changeset, with its files', () => {
    const changed = [
      'packages/core/src/index.ts',
      'packages/core/src/index.test.ts',
      'packages/algos/src/gradient-check/gradient-check.ts',
      'packages/secret/src/index.ts',
      'README.md',
    ];
    const none = packagesMissingChangesets(changed, packages, []);
    assert.deepEqual(
      [...none.entries()],
      [
        ['@moerl/core', ['packages/core/src/index.ts']],
        ['@moerl/algos', ['packages/algos/src/gradient-check/gradient-check.ts']],
      ],
    );
    const some = packagesMissingChangesets(changed, packages, ["---\n'@moerl/algos': minor\n---\n"]);
    assert.deepEqual([...some.keys()], ['@moerl/core']);
    assert.equal(packagesMissingChangesets(['packages/core/src/x.test.ts'], packages, []).size, 0);
  });
});
