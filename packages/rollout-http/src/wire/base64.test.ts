import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { base64Of } from '../__fixtures__/wire-writers.js';
import { decodeBase64, encodeBase64 } from './base64.js';

describe('base64', () => {
  it('decodes what an independent encoder wrote, and encodes to the same text', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const text = base64Of(bytes);
        expect([...decodeBase64(text, 'field')]).toEqual([...bytes]);
        expect(encodeBase64(bytes)).toBe(text);
      }),
    );
  });

  it('decodes the empty string to zero bytes (SGLang sends it for zero rows)', () => {
    expect(decodeBase64('', 'field').length).toBe(0);
  });

  it('rejects bad length, url-safe alphabet and whitespace, naming the field', () => {
    expect(() => decodeBase64('AAA', 'meta_info.routed_experts')).toThrow(/meta_info.routed_experts/);
    expect(() => decodeBase64('AA-_', 'f')).toThrow(/standard base64/);
    expect(() => decodeBase64('AA A', 'f')).toThrow(/standard base64/);
  });
});
