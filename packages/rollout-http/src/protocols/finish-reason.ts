import type { FinishReason } from '@moerl/core';
import { isObject } from './json-fields.js';

/**
 * SGLang sends `{type: 'stop' | 'length' | 'abort', ...}`, OpenAI-style endpoints a string; anything that is
 * not a normal stop or length is treated as an abort.
 */
export function readFinishReason(value: unknown): FinishReason {
  const type = isObject(value) ? value.type : value;
  if (type === 'stop' || type === 'length') return type;
  return 'abort';
}
