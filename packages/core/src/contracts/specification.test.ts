import { describe, expect, it } from 'vitest';
import { MoerlError } from '../errors/moerl-error.js';
import type { PolicyTrainerCapabilities } from './capabilities.js';
import { assertSupports } from './specification.js';

const capabilities: PolicyTrainerCapabilities = {
  recordRouting: true,
  routingReplay: false,
  entropy: true,
  checkpoints: true,
};

describe('assertSupports', () => {
  it('passes when every required capability is claimed', () => {
    expect(() =>
      assertSupports({ specificationVersion: 'v1', backendName: 'x', capabilities }, [
        'recordRouting',
        'entropy',
      ]),
    ).not.toThrow();
  });

  it('names the missing capability with UNSUPPORTED', () => {
    const run = () =>
      assertSupports({ specificationVersion: 'v1', backendName: 'x', capabilities }, ['routingReplay']);
    expect(run).toThrow('x lacks required capability: routingReplay');
    expect(run).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
  });

  it('rejects another specification version', () => {
    try {
      assertSupports({ specificationVersion: 'v2', backendName: 'future', capabilities }, []);
      expect.unreachable();
    } catch (error) {
      expect(MoerlError.isInstance(error, 'UNSUPPORTED')).toBe(true);
      expect((error as MoerlError).details).toEqual({ expected: 'v1', found: 'v2' });
    }
  });
});
