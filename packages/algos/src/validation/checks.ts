import { MoerlError } from '@moerl/core';

/** Any array of numbers: typed arrays or plain arrays. */
export type NumberArray = ArrayLike<number>;

/**
 * Offsets of a flattened ragged batch: length numSequences + 1, starting at 0, never decreasing.
 * When `tokens` is given, the last offset must equal it. Returns the number of sequences.
 */
export function checkSequenceOffsets(field: string, offsets: ArrayLike<number>, tokens?: number): number {
  if (offsets === undefined || offsets === null || typeof offsets.length !== 'number') {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `${field} must be an array of offsets, found ${String(offsets)}`,
      {
        details: { field },
      },
    );
  }
  if (offsets.length < 1 || offsets[0] !== 0) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `${field} must start at 0 (length numSequences + 1), found ${offsets.length === 0 ? 'an empty array' : `first offset ${offsets[0]}`}`,
      { details: { field, found: offsets.length === 0 ? null : offsets[0] } },
    );
  }
  for (let index = 1; index < offsets.length; index++) {
    const offset = offsets[index]!;
    if (!Number.isInteger(offset) || offset < offsets[index - 1]!) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `${field}[${index}] must be an integer ≥ ${field}[${index - 1}] = ${offsets[index - 1]}, found ${offset}`,
        { details: { field, index, found: offset } },
      );
    }
  }
  const last = offsets[offsets.length - 1]!;
  if (tokens !== undefined && last !== tokens) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `${field} must end at the token count ${tokens}, found ${last}`,
      { details: { field, expected: tokens, found: last } },
    );
  }
  return offsets.length - 1;
}

/** Throws INVALID_ARGUMENT unless `array` has `expected` entries. */
export function checkLength(field: string, array: ArrayLike<unknown>, expected: number, unit: string): void {
  const found = array === undefined || array === null ? undefined : array.length;
  if (found !== expected) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `${field} must hold one value per ${unit} (${expected}), found ${found === undefined ? String(array) : `${found} values`}`,
      { details: { field, expected, found: found ?? null } },
    );
  }
}

/** Throws NON_FINITE at the first NaN or ±Infinity, naming the field and index. */
export function checkFinite(field: string, array: NumberArray): void {
  for (let index = 0; index < array.length; index++) {
    const value = array[index]!;
    if (!Number.isFinite(value)) {
      throw new MoerlError('NON_FINITE', `${field}[${index}] must be finite, found ${value}`, {
        details: { field, index, found: String(value) },
      });
    }
  }
}

/** Length and finiteness in one call. */
export function checkValues(field: string, array: NumberArray, expected: number, unit: string): void {
  checkLength(field, array, expected, unit);
  checkFinite(field, array);
}

/** A 0/1 mask of `tokens` entries with at least one 1 (unless `allowEmpty`). Returns the number of ones. */
export function checkMask(
  field: string,
  mask: ArrayLike<number>,
  tokens: number,
  allowEmpty = false,
): number {
  checkLength(field, mask, tokens, 'token');
  let ones = 0;
  for (let index = 0; index < tokens; index++) {
    const value = mask[index];
    if (value !== 0 && value !== 1) {
      throw new MoerlError('INVALID_ARGUMENT', `${field}[${index}] must be 0 or 1, found ${value}`, {
        details: { field, index, found: value },
      });
    }
    ones += value;
  }
  if (ones === 0 && !allowEmpty) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `${field} must keep at least one token, found none of ${tokens}`,
      {
        details: { field, found: 0 },
      },
    );
  }
  return ones;
}

/** A finite number within [min, max] (bounds inclusive unless marked open). */
export function checkNumber(
  field: string,
  value: number,
  range: { readonly min?: number; readonly max?: number; readonly minOpen?: boolean },
): void {
  const { min = -Infinity, max = Infinity, minOpen = false } = range;
  const ok = typeof value === 'number' && Number.isFinite(value) && (minOpen ? value > min : value >= min);
  if (!ok || value > max) {
    const lower = min === -Infinity ? '' : `${minOpen ? '>' : '≥'} ${min}`;
    const upper = max === Infinity ? '' : `≤ ${max}`;
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `${field} must be a finite number ${[lower, upper].filter(Boolean).join(' and ')}, found ${String(value)}`,
      { details: { field, found: value } },
    );
  }
}

/** One of the allowed string values. */
export function checkChoice<T extends string>(field: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `${field} must be one of ${allowed.map((name) => `'${name}'`).join(', ')}, found '${value}'`,
      { details: { field, found: value, allowed } },
    );
  }
  return value as T;
}

/** Length checks (O(1)) for the low-level functions, which trust values but not shapes. */
export function checkTokenArrays(tokens: number, arrays: Readonly<Record<string, ArrayLike<unknown>>>): void {
  for (const [field, array] of Object.entries(arrays)) checkLength(field, array, tokens, 'token');
}
