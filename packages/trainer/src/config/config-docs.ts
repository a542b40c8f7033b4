import { z } from 'zod';
import { runConfigSchema } from './run-config-schema.js';

export interface ConfigField {
  readonly path: string;
  readonly type: string;
  readonly defaultValue: unknown;
  readonly description: string;
}

interface JsonSchemaNode {
  readonly type?: string | string[];
  readonly enum?: readonly unknown[];
  readonly items?: JsonSchemaNode;
  readonly properties?: Record<string, JsonSchemaNode>;
  readonly default?: unknown;
  readonly description?: string;
}

function typeOf(node: JsonSchemaNode): string {
  if (node.enum !== undefined) return node.enum.map((value) => JSON.stringify(value)).join(' | ');
  if (node.type === 'array') return `${node.items === undefined ? 'unknown' : typeOf(node.items)}[]`;
  return Array.isArray(node.type) ? node.type.join(' | ') : (node.type ?? 'unknown');
}

/**
 * The run config's JSON Schema (draft 2020-12), as a config file is written: defaults shown, every field
 * optional. Editors that read `$schema` (VS Code for JSON, the YAML language server for YAML) complete and
 * check config files with it.
 */
export function configJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(runConfigSchema, { io: 'input', unrepresentable: 'any' }),
    title: 'moerl run config',
  };
}

/** Every leaf field of the run config with its type, default and description, from the schema itself. */
export function configFields(): ConfigField[] {
  const schema = configJsonSchema() as JsonSchemaNode;
  const fields: ConfigField[] = [];
  const visit = (node: JsonSchemaNode, path: string) => {
    if (node.type === 'object' && node.properties !== undefined) {
      for (const [key, child] of Object.entries(node.properties))
        visit(child, path === '' ? key : `${path}.${key}`);
      return;
    }
    fields.push({
      path,
      type: typeOf(node),
      defaultValue: node.default,
      description: node.description ?? '',
    });
  };
  visit(schema, '');
  return fields;
}

/** The fields as a Markdown table (for `moerl config --docs` and the README). */
export function configDocsMarkdown(): string {
  const rows = configFields().map(
    (field) =>
      `| \`${field.path}\` | ${field.type.replace(/\|/g, '\\|')} | ${field.defaultValue === undefined ? '—' : `\`${JSON.stringify(field.defaultValue)}\``} | ${field.description} |`,
  );
  return ['| field | type | default | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}
