// Pure checks of a packed package, used by verify-packages.mjs and tested in package-checks.test.mjs.
import { builtinModules } from 'node:module';

/** Files a published package must not contain: tests, fixtures, build and test leftovers. */
const FORBIDDEN_FILES = [
  { pattern: /(^|\/)[^/]+\.(test|spec)\.[cm]?[jt]sx?$/, why: 'a test file' },
  { pattern: /(^|\/)[^/]+\.(test|spec)\.d\.[cm]?ts(\.map)?$/, why: 'a test declaration' },
  { pattern: /(^|\/)__(fixtures|snapshots|mocks)__\//, why: 'a test fixture' },
  { pattern: /(^|\/)\.vitest-report\.json$/, why: 'a test report' },
  { pattern: /(^|\/)\.turbo\//, why: 'a turbo cache file' },
  { pattern: /\.tsbuildinfo$/, why: 'a tsc build-info file' },
  { pattern: /(^|\/)node_modules\//, why: 'a dependency' },
];

/** Optional peers that are heavy native installs: a package may use them when present, never require them. */
const HEAVY_PACKAGES = [
  '@tensorflow/tfjs-node',
  '@tensorflow/tfjs-node-gpu',
  'onnxruntime-node',
  'onnxruntime-node-gpu',
];

/** `file` paths (inside the tarball, without the leading `package/`) that must not ship, with the reason. */
export function forbiddenFiles(files) {
  const found = [];
  for (const file of files) {
    const rule = FORBIDDEN_FILES.find(({ pattern }) => pattern.test(file));
    if (rule !== undefined) found.push(`${file} (${rule.why})`);
  }
  return found;
}

/** Every file path an `exports` map (or `main`/`types`) points at, by subpath and condition. */
function exportTargets(manifest) {
  const targets = [];
  const walk = (subpath, conditions, value) => {
    if (typeof value === 'string') targets.push({ subpath, conditions, path: value.replace(/^\.\//, '') });
    else if (Array.isArray(value)) for (const entry of value) walk(subpath, conditions, entry);
    else if (value !== null && typeof value === 'object') {
      for (const [key, entry] of Object.entries(value)) {
        if (key.startsWith('.')) walk(key, conditions, entry);
        else walk(subpath, [...conditions, key], entry);
      }
    }
  };
  if (manifest.exports !== undefined) walk('.', [], manifest.exports);
  for (const field of ['main', 'types', 'module']) {
    if (typeof manifest[field] === 'string')
      targets.push({ subpath: '.', conditions: [field], path: manifest[field].replace(/^\.\//, '') });
  }
  return targets;
}

/**
 * Problems with the entry points: a target missing from the tarball, a JavaScript entry point without a
 * `types` condition, or a `types` target that is not a declaration file.
 */
export function entryPointProblems(manifest, files) {
  const shipped = new Set(files);
  const problems = [];
  const targets = exportTargets(manifest);
  for (const { subpath, conditions, path } of targets) {
    if (path.includes('*')) continue;
    if (!shipped.has(path))
      problems.push(`${subpath} [${conditions.join(' > ')}] points at ${path}, not in the tarball`);
  }
  const subpaths = new Set(targets.map((target) => target.subpath));
  for (const subpath of subpaths) {
    if (subpath === './package.json') continue;
    const own = targets.filter((target) => target.subpath === subpath);
    const runsJs = own.some((target) => /\.[cm]?js$/.test(target.path));
    const types = own.filter((target) => target.conditions.includes('types'));
    if (runsJs && types.length === 0) problems.push(`${subpath} has JavaScript but no "types" condition`);
    for (const { path } of types) {
      if (!/\.d\.[cm]?ts$/.test(path))
        problems.push(`${subpath} "types" points at ${path}, not a .d.ts file`);
    }
  }
  return problems;
}

const SPECIFIER_PATTERNS = [
  /\b(?:import|export)\s[^'"`;]*?\sfrom\s*['"]([^'"]+)['"]/g,
  /^\s*import\s*['"]([^'"]+)['"]/gm,
  /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
];

/** The module specifiers a JavaScript or declaration file imports, comments stripped first. */
export function importSpecifiers(source) {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
  const found = new Set();
  for (const pattern of SPECIFIER_PATTERNS) {
    // A specifier never holds whitespace or `${`: such a match is prose in a string, not an import.
    for (const match of code.matchAll(pattern)) if (!/\s|\$\{/.test(match[1])) found.add(match[1]);
  }
  return [...found];
}

/** `@scope/name/sub` → `@scope/name`, `name/sub` → `name`; undefined for relative paths and builtins. */
export function packageNameOf(specifier) {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('#')) return undefined;
  if (specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0])) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Packages imported by `sources` (a map of file → text) that the manifest does not declare. */
export function undeclaredImports(manifest, sources) {
  const declared = new Set([
    manifest.name,
    ...Object.keys(manifest.dependencies ?? {}),
    ...Object.keys(manifest.peerDependencies ?? {}),
    ...Object.keys(manifest.optionalDependencies ?? {}),
  ]);
  const problems = [];
  for (const [file, text] of sources) {
    for (const specifier of importSpecifiers(text)) {
      const name = packageNameOf(specifier);
      if (name !== undefined && !declared.has(name))
        problems.push(`${file} imports ${specifier}, not declared`);
    }
  }
  return problems;
}

/**
 * The README's first ```ts block: its code, and the test file it names on its first line
 * (`// my-engine.conformance.test.ts`), when it is a test to run with vitest rather than a script.
 */
export function readmeExample(readme) {
  const match = /^```(?:ts|typescript)[^\n]*\n([\s\S]*?)^```/m.exec(readme);
  if (match === null) return undefined;
  const code = match[1];
  const testFile = /^\/\/\s*(\S+\.test\.ts)\s*$/m.exec(code.split('\n', 1)[0])?.[1];
  return { code, testFile };
}

/** Names of the moerl packages `manifest` needs installed: dependencies and required peers. */
export function requiredWorkspaceDeps(manifest, scope = '@moerl/') {
  const optionalPeers = new Set(
    Object.entries(manifest.peerDependenciesMeta ?? {})
      .filter(([, meta]) => meta?.optional === true)
      .map(([name]) => name),
  );
  const names = [
    ...Object.keys(manifest.dependencies ?? {}),
    ...Object.keys(manifest.peerDependencies ?? {}).filter((name) => !optionalPeers.has(name)),
  ];
  return [...new Set(names.filter((name) => name.startsWith(scope)))];
}

/**
 * Heavy packages installed in a consumer although no installed moerl package (`manifests`: the package and
 * the moerl packages installed with it) lists them in `dependencies`: pulled in by a required peer or a
 * third-party dependency, where an optional peer was meant.
 */
export function unexpectedHeavyInstalls(manifests, installed) {
  const dependencies = new Set(manifests.flatMap((manifest) => Object.keys(manifest.dependencies ?? {})));
  return HEAVY_PACKAGES.filter((name) => installed.includes(name) && !dependencies.has(name));
}
