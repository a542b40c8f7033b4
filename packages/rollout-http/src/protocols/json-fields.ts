import { MoerlError } from '@moerl/core';

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Throws ROUTING_SHAPE naming the request and field; used for malformed server bodies. */
export function bodyError(requestId: string, field: string, expected: string, found: unknown): MoerlError {
  return new MoerlError(
    'ROUTING_SHAPE',
    `request ${requestId}: ${field} must be ${expected}, found ${describeValue(found)}`,
    { details: { requestId, field } },
  );
}

export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing (field absent)';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string')
    return `the string "${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/** Reads an array of integer token ids. */
export function readTokenIds(value: unknown, requestId: string, field: string): Int32Array {
  if (!Array.isArray(value) || !value.every((id) => Number.isInteger(id) && id >= 0 && id <= 2 ** 31 - 1)) {
    throw bodyError(requestId, field, 'an array of non-negative integer token ids', value);
  }
  return Int32Array.from(value as number[]);
}
