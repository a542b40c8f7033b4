import { describe, expect, it } from 'vitest';
import { assertMoerl, MoerlError } from './moerl-error.js';

describe('MoerlError', () => {
  it('carries code, details and cause', () => {
    const cause = new Error('disk full');
    const error = new MoerlError('IO_ERROR', 'could not write', { details: { path: '/x' }, cause });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('MoerlError');
    expect(error.code).toBe('IO_ERROR');
    expect(error.details).toEqual({ path: '/x' });
    expect(error.cause).toBe(cause);
  });

  it('is recognised across copies by its marker, optionally by code', () => {
    const foreign = Object.assign(new Error('x'), {
      [Symbol.for('moerl.error.v1')]: true,
      code: 'NON_FINITE',
    });
    expect(MoerlError.isInstance(foreign)).toBe(true);
    expect(MoerlError.isInstance(foreign, 'NON_FINITE')).toBe(true);
    expect(MoerlError.isInstance(foreign, 'CONFIG_INVALID')).toBe(false);
    expect(MoerlError.isInstance(new Error('plain'))).toBe(false);
    expect(MoerlError.isInstance(null)).toBe(false);
  });

  it('assertMoerl builds its message only on failure', () => {
    let built = 0;
    assertMoerl(true, 'NON_FINITE', () => `${++built}`);
    expect(built).toBe(0);
    expect(() => assertMoerl(false, 'NON_FINITE', () => 'loss is NaN', { step: 3 })).toThrow(
      expect.objectContaining({ code: 'NON_FINITE', message: 'loss is NaN', details: { step: 3 } }),
    );
  });
});
