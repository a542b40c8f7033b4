import type { MoerlErrorCode } from './error-codes.js';

// A Symbol.for marker lets `isInstance` work across duplicated installs of @moerl/core,
// where `instanceof` would fail because each copy has its own class.
const MARKER = Symbol.for('moerl.error.v1');

export interface MoerlErrorOptions {
  /** Structured facts about the failure, e.g. `{ expected: 64, found: 63, field: 'hiddenSize' }`. */
  readonly details?: Readonly<Record<string, unknown>>;
  readonly cause?: unknown;
}

/** The one error class of moerl. Branch on `code`, never on the message text. */
export class MoerlError extends Error {
  readonly [MARKER] = true;
  readonly code: MoerlErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: MoerlErrorCode, message: string, options: MoerlErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MoerlError';
    this.code = code;
    this.details = options.details ?? {};
  }

  static isInstance(value: unknown, code?: MoerlErrorCode): value is MoerlError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true &&
      (code === undefined || (value as MoerlError).code === code)
    );
  }
}

/** Throws a MoerlError with `code` unless `condition` holds. The message is built lazily. */
export function assertMoerl(
  condition: unknown,
  code: MoerlErrorCode,
  message: () => string,
  details?: Readonly<Record<string, unknown>>,
): asserts condition {
  if (!condition) throw new MoerlError(code, message(), details === undefined ? {} : { details });
}
