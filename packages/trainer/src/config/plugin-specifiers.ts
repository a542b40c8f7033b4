import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

// The conditions Node's ESM loader matches, in the order an `exports` object lists them.
const CONDITIONS: ReadonlySet<string> = new Set(['import', 'node', 'default']);

/**
 * Anchors a `plugins` entry to `base` (the config file's directory, or the working directory for
 * overrides): a relative or absolute path becomes a `file:` URL; a bare package name (`pkg`,
 * `pkg/register`, `@scope/pkg/sub`) becomes the `file:` URL of the module Node's `import` would load from
 * `base`'s `node_modules` (its `exports` map read with the `import`, `node` and `default` conditions). URLs,
 * and bare names not installed there, are returned unchanged (imported from the trainer's own location).
 */
export function resolvePluginSpecifier(specifier: string, base: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(specifier) && !isAbsolute(specifier)) return specifier; // file:, data:, node:
  if (specifier.startsWith('./') || specifier.startsWith('../') || isAbsolute(specifier)) {
    return pathToFileURL(resolve(base, specifier)).href;
  }
  return resolveInstalled(specifier, resolve(base)) ?? specifier;
}

function resolveInstalled(specifier: string, base: string): string | undefined {
  const parts = specifier.split('/');
  const nameParts = specifier.startsWith('@') ? 2 : 1;
  if (parts.length < nameParts) return undefined;
  const name = parts.slice(0, nameParts).join('/');
  const subpath = parts.length > nameParts ? `./${parts.slice(nameParts).join('/')}` : '.';
  for (let directory = base; ; directory = dirname(directory)) {
    const root = join(directory, 'node_modules', name);
    const manifestPath = join(root, 'package.json');
    if (existsSync(manifestPath)) {
      let manifest: { exports?: unknown; main?: unknown };
      try {
        manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as typeof manifest;
      } catch {
        return undefined;
      }
      const target = packageTarget(manifest, subpath);
      return target === undefined ? undefined : pathToFileURL(join(root, target)).href;
    }
    if (dirname(directory) === directory) return undefined;
  }
}

function packageTarget(manifest: { exports?: unknown; main?: unknown }, subpath: string): string | undefined {
  const { exports } = manifest;
  if (exports === undefined || exports === null) {
    if (subpath !== '.') return subpath;
    return typeof manifest.main === 'string' ? manifest.main : 'index.js';
  }
  const isSubpathMap =
    typeof exports === 'object' &&
    !Array.isArray(exports) &&
    Object.keys(exports).some((key) => key.startsWith('.'));
  if (!isSubpathMap) return subpath === '.' ? conditionalTarget(exports) : undefined;
  return conditionalTarget((exports as Record<string, unknown>)[subpath]);
}

function conditionalTarget(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    for (const item of value) {
      const target = conditionalTarget(item);
      if (target !== undefined) return target;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [condition, inner] of Object.entries(value)) {
      if (!CONDITIONS.has(condition)) continue;
      const target = conditionalTarget(inner);
      if (target !== undefined) return target;
    }
  }
  return undefined;
}

/** `layer` with its `plugins` entries (when it has a list of strings) anchored to `base`. */
export function anchorPlugins<T extends Record<string, unknown>>(layer: T, base: string): T {
  const { plugins } = layer;
  if (!Array.isArray(plugins)) return layer;
  return {
    ...layer,
    plugins: plugins.map((plugin: unknown) =>
      typeof plugin === 'string' ? resolvePluginSpecifier(plugin, base) : plugin,
    ),
  };
}
