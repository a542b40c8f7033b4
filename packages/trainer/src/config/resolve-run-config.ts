import { readFile } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { MoerlError } from '@moerl/core';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { anchorPlugins } from './plugin-specifiers.js';
import { listPresets, PRESETS } from './presets.js';
import { type RunConfig, type RunConfigInput, runConfigSchema } from './run-config-schema.js';

type Plain = Record<string, unknown>;

const isPlainObject = (value: unknown): value is Plain =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Objects merge key by key; anything else (arrays included) is replaced. */
export function deepMerge(base: Plain, override: Plain): Plain {
  const merged: Plain = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const current = merged[key];
    merged[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return merged;
}

/** `train.steps=20` → `{ train: { steps: 20 } }`; values are JSON when they parse as JSON, else strings. */
export function parseOverride(assignment: string): Plain {
  const equals = assignment.indexOf('=');
  if (equals <= 0) {
    throw new MoerlError(
      'CONFIG_INVALID',
      `A config override must look like key.path=value, found "${assignment}"`,
      {
        details: { found: assignment },
      },
    );
  }
  const path = assignment.slice(0, equals).split('.');
  const text = assignment.slice(equals + 1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = text;
  }
  return path.reduceRight<unknown>((inner, key) => ({ [key]: inner }), value) as Plain;
}

export async function readConfigFile(path: string): Promise<Plain> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new MoerlError('CONFIG_INVALID', `Cannot read config file ${path}: ${(error as Error).message}`, {
      cause: error,
      details: { path },
    });
  }
  let parsed: unknown;
  try {
    parsed = ['.yaml', '.yml'].includes(extname(path).toLowerCase()) ? parseYaml(text) : JSON.parse(text);
  } catch (error) {
    throw new MoerlError(
      'CONFIG_INVALID',
      `Config file ${path} is not valid ${extname(path) || 'JSON'}: ${(error as Error).message}`,
      {
        cause: error,
        details: { path },
      },
    );
  }
  if (!isPlainObject(parsed)) {
    throw new MoerlError('CONFIG_INVALID', `Config file ${path} must hold an object at the top level`, {
      details: { path },
    });
  }
  return parsed;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.join('.') || '(top level)';
  if (issue.code === 'unrecognized_keys') {
    return `${path}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((key) => `"${key}"`).join(', ')}`;
  }
  const found =
    'input' in issue && issue.input !== undefined ? ` (found ${JSON.stringify(issue.input)})` : '';
  return `${path}: ${issue.message}${found}`;
}

/** Validates a merged config object; the error lists every problem with its field path. */
export function validateRunConfig(input: unknown, source = 'config'): RunConfig {
  const result = runConfigSchema.safeParse(input, { reportInput: true });
  if (!result.success) {
    const problems = result.error.issues.map(describeIssue);
    throw new MoerlError('CONFIG_INVALID', `Invalid ${source}:\n  - ${problems.join('\n  - ')}`, {
      details: { problems },
    });
  }
  return result.data;
}

export interface ResolveRunConfigOptions {
  /** Preset name(s), merged in order (e.g. `['demo', 'grpo-r3']`). */
  readonly preset?: string | readonly string[];
  /** Path of a JSON or YAML config file. */
  readonly file?: string;
  /** Already-parsed settings applied after the preset and file. */
  readonly config?: RunConfigInput;
  /** `key.path=value` assignments applied last (CLI flags). */
  readonly overrides?: readonly string[];
}

/** Preset, then file, then `config`, then overrides; validated once at the end. */
export async function resolveRunConfig(options: ResolveRunConfigOptions = {}): Promise<RunConfig> {
  let merged: Plain = {};
  const presets =
    options.preset === undefined
      ? []
      : typeof options.preset === 'string'
        ? [options.preset]
        : options.preset;
  for (const name of presets) {
    const preset = PRESETS[name];
    if (preset === undefined) {
      throw new MoerlError(
        'CONFIG_INVALID',
        `Unknown preset "${name}"; presets: ${listPresets().join(', ')}`,
        {
          details: { field: 'preset', found: name, allowed: listPresets() },
        },
      );
    }
    merged = deepMerge(merged, preset as Plain);
  }
  // Plugin paths and package names resolve from the config file's directory, or the working directory.
  if (options.file !== undefined) {
    merged = deepMerge(
      merged,
      anchorPlugins(await readConfigFile(options.file), dirname(resolve(options.file))),
    );
  }
  if (options.config !== undefined)
    merged = deepMerge(merged, anchorPlugins(options.config as Plain, process.cwd()));
  for (const assignment of options.overrides ?? []) {
    merged = deepMerge(merged, anchorPlugins(parseOverride(assignment), process.cwd()));
  }
  return validateRunConfig(merged, options.file === undefined ? 'config' : `config (${options.file})`);
}
