import { MoerlError } from '@moerl/core';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decodes standard base64; rejects anything Buffer would silently skip (whitespace, url-safe chars, bad length). */
export function decodeBase64(text: string, field: string): Uint8Array {
  if (typeof text !== 'string' || text.length % 4 !== 0 || !BASE64.test(text)) {
    throw new MoerlError(
      'ROUTING_SHAPE',
      `${field}: expected standard base64 (length a multiple of 4), found ${describe(text)}`,
      { details: { field } },
    );
  }
  const buffer = Buffer.from(text, 'base64');
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function describe(value: unknown): string {
  if (typeof value !== 'string') return typeof value;
  return `a string of ${value.length} characters${value.length > 0 ? ` starting "${value.slice(0, 16)}"` : ''}`;
}
