/** Stable error codes. Code strings never change meaning; new codes may be added. */
export const MOERL_ERROR_CODES = [
  'CONFIG_INVALID',
  'CHECKPOINT_INVALID',
  'ROUTING_SHAPE',
  'ROUTING_MISSING',
  /** Routing paired with engine logprobs (or other routing) of a different weight version. */
  'ROUTING_STALE',
  'NON_FINITE',
  'BACKEND_UNAVAILABLE',
  'BACKEND_CONFLICT',
  'UNSUPPORTED',
  'INVALID_ARGUMENT',
  'CACHE_FULL',
  'IO_ERROR',
] as const;

export type MoerlErrorCode = (typeof MOERL_ERROR_CODES)[number];
