// Pure rules of the changeset check, used by check-changeset.mjs and tested in changeset-rules.test.mjs.

/** The package directory of a public source file (`packages/<dir>/src/...`, not a test or fixture). */
export function publicSourceDir(file) {
  const match = /^packages\/([^/]+)\/src\/(.+)$/.exec(file);
  if (match === null) return undefined;
  const inner = match[2];
  if (
    /(^|\/)[^/]+\.(test|spec)\.[cm]?[jt]sx?$/.test(inner) ||
    /(^|\/)__(fixtures|snapshots|mocks)__\//.test(inner)
  )
    return undefined;
  return match[1];
}

/** Is `file` a changeset (a markdown file in .changeset/ other than its README)? */
export function isChangesetFile(file) {
  return /^\.changeset\/[^/]+\.md$/.test(file) && file !== '.changeset/README.md';
}

const FRONT_MATTER = /^---\r?\n([\s\S]*?)\r?\n---\s*(\r?\n|$)/;

/**
 * Does the changeset start with front matter `---` … `---`, as `changeset version` requires? Biome's
 * markdown formatter turns a one-line front matter (`---` / `'pkg': minor` / `---`) into a `## ` heading,
 * which leaves none.
 */
export function hasFrontMatter(text) {
  return FRONT_MATTER.test(text.trimStart());
}

/** Package names a changeset's front matter bumps: `'@moerl/core': minor` → `@moerl/core`. */
export function changesetPackages(text) {
  const match = FRONT_MATTER.exec(text.trimStart());
  if (match === null) return [];
  const names = [];
  for (const line of match[1].split(/\r?\n/)) {
    const entry = /^\s*(['"]?)([^'":\s]+)\1\s*:\s*(major|minor|patch)\s*$/.exec(line);
    if (entry !== null) names.push(entry[2]);
  }
  return names;
}

/**
 * Public packages whose source changed without a changeset naming them. `packages` maps a directory under
 * packages/ to its manifest; private packages (examples, tools) need none.
 */
export function packagesMissingChangesets(changedFiles, packages, changesetTexts) {
  const covered = new Set(changesetTexts.flatMap(changesetPackages));
  const missing = new Map();
  for (const file of changedFiles) {
    const dir = publicSourceDir(file);
    const manifest = dir === undefined ? undefined : packages.get(dir);
    if (manifest === undefined || manifest.private === true || covered.has(manifest.name)) continue;
    const files = missing.get(manifest.name) ?? [];
    files.push(file);
    missing.set(manifest.name, files);
  }
  return missing;
}
