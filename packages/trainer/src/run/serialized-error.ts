import { MoerlError, type MoerlErrorCode } from '@moerl/core';

/** An error as it crosses to another thread or process: its message, and its code and details if it has them. */
export interface SerializedError {
  readonly message: string;
  readonly code?: MoerlErrorCode;
  readonly details?: Readonly<Record<string, unknown>>;
}

export function serializeError(error: unknown): SerializedError {
  return {
    message: error instanceof Error ? error.message : String(error),
    ...(MoerlError.isInstance(error) ? { code: error.code, details: error.details } : {}),
  };
}

/** The error on this side: a MoerlError with the same code and details, or a plain Error. */
export function deserializeError(error: SerializedError): Error {
  return error.code === undefined
    ? new Error(error.message)
    : new MoerlError(error.code, error.message, { details: error.details ?? {} });
}
