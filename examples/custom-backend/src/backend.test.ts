import { createBackendRegistry, listBackends, resolveBackend } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { plainTsTrainerBackend, registerPlainTsBackend } from './backend.js';

describe('registration', () => {
  it('importing the plugin entry registers plain-ts globally, and resolving picks it', async () => {
    expect(listBackends('trainer').map((info) => info.name)).not.toContain('plain-ts');
    await import('./register.js');
    expect(listBackends('trainer').map((info) => [info.name, info.priority])).toEqual([['plain-ts', 0]]);
    const resolved = await resolveBackend('trainer');
    expect(resolved.backend).toBe(plainTsTrainerBackend);
    expect(resolved.summary).toBe('trainer backend: plain-ts');
    registerPlainTsBackend();
    expect(listBackends('trainer')).toHaveLength(1);
  });

  it('a negative priority is only picked by name, and a higher-priority backend wins', async () => {
    const registry = createBackendRegistry();
    registerPlainTsBackend({ registry, priority: -1 });
    await expect(registry.resolve('trainer')).rejects.toThrow(/None may be picked automatically/);
    expect((await registry.resolve('trainer', { preferred: 'plain-ts' })).name).toBe('plain-ts');
    registry.register({
      name: 'faster',
      kind: 'trainer',
      priority: 5,
      create: () => ({ ...plainTsTrainerBackend, name: 'faster' }),
    });
    expect((await registry.resolve('trainer')).name).toBe('faster');
  });
});
