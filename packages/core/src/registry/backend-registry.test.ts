import { describe, expect, it } from 'vitest';
import type { TrainerBackend } from '../contracts/backend.js';
import { MoerlError } from '../errors/moerl-error.js';
import { createBackendRegistry, globalBackendRegistry } from './backend-registry.js';

function fakeTrainer(name: string): TrainerBackend {
  return {
    name,
    createTrainer: () => Promise.reject(new MoerlError('UNSUPPORTED', 'fake backend trains nothing')),
  };
}

const missingDependency = (pkg: string) => () => {
  throw new Error(`Cannot find package '${pkg}'`);
};

describe('backend registry', () => {
  it('picks the highest priority that initialises and says why the others were skipped', async () => {
    const registry = createBackendRegistry();
    registry.register({ name: 'cpu', kind: 'trainer', priority: 1, create: () => fakeTrainer('cpu') });
    registry.register({
      name: 'gpu',
      kind: 'trainer',
      priority: 3,
      create: missingDependency('@tensorflow/tfjs-node-gpu'),
    });
    registry.register({
      name: 'wasm',
      kind: 'trainer',
      priority: 2,
      create: async () => fakeTrainer('wasm'),
    });
    const resolved = await registry.resolve('trainer');
    expect(resolved.name).toBe('wasm');
    expect(resolved.backend.name).toBe('wasm');
    expect(resolved.skipped.map((skip) => skip.name)).toEqual(['gpu']);
    expect(resolved.summary).toBe(
      "trainer backend: wasm (skipped gpu: Cannot find package '@tensorflow/tfjs-node-gpu')",
    );
    expect(registry.list('trainer').map((info) => [info.name, info.state])).toEqual([
      ['gpu', 'failed'],
      ['wasm', 'ready'],
      ['cpu', 'untried'],
    ]);
  });

  it('initialises each backend once, even for concurrent resolvers', async () => {
    const registry = createBackendRegistry();
    let calls = 0;
    registry.register({
      name: 'slow',
      kind: 'rollout',
      priority: 1,
      create: async () => {
        calls++;
        await new Promise((resolve) => setTimeout(resolve, 5));
        return { name: 'slow', createEngine: () => Promise.reject(new Error('unused')) };
      },
    });
    const [first, second] = await Promise.all([registry.resolve('rollout'), registry.resolve('rollout')]);
    await registry.resolve('rollout');
    expect(calls).toBe(1);
    expect(first.backend).toBe(second.backend);
  });

  it('lists every registered name and reason when nothing resolves', async () => {
    const registry = createBackendRegistry();
    registry.register({ name: 'a', kind: 'trainer', priority: 2, create: missingDependency('a-lib') });
    registry.register({ name: 'b', kind: 'trainer', priority: 1, create: missingDependency('b-lib') });
    const error = await registry.resolve('trainer').catch((caught: unknown) => caught);
    expect(MoerlError.isInstance(error, 'BACKEND_UNAVAILABLE')).toBe(true);
    expect((error as MoerlError).message).toBe(
      "No trainer backend could be initialised. Registered: a, b.\n  [a] Cannot find package 'a-lib'\n  [b] Cannot find package 'b-lib'",
    );
    expect(((error as MoerlError).cause as unknown[]).length).toBe(2);
    await expect(createBackendRegistry().resolve('rollout')).rejects.toThrow(
      /No rollout backend is registered/,
    );
  });

  it('honours a preferred name without falling back, and names the registered ones for an unknown name', async () => {
    const registry = createBackendRegistry();
    registry.register({ name: 'fast', kind: 'trainer', priority: 5, create: () => fakeTrainer('fast') });
    registry.register({ name: 'broken', kind: 'trainer', priority: 1, create: missingDependency('x') });
    await expect(registry.resolve('trainer', { preferred: 'broken' })).rejects.toThrow(
      /\[broken\] Cannot find package 'x'/,
    );
    await expect(registry.resolve('trainer', { preferred: 'gpu' })).rejects.toThrow(
      'No trainer backend named "gpu" is registered; registered: fast, broken',
    );
    expect((await registry.resolve('trainer', { preferred: ['broken', 'fast'] })).name).toBe('fast');
  });

  it('never picks a negative priority automatically, but does by name', async () => {
    const registry = createBackendRegistry();
    registry.register({
      name: 'experimental',
      kind: 'trainer',
      priority: -1,
      create: () => fakeTrainer('experimental'),
    });
    await expect(registry.resolve('trainer')).rejects.toThrow(
      /Registered: experimental\. None may be picked automatically/,
    );
    expect((await registry.resolve('trainer', { preferred: 'experimental' })).name).toBe('experimental');
  });

  it('is idempotent for the same registration, ignores lower priorities and refuses equal-priority conflicts', async () => {
    const registry = createBackendRegistry();
    const registration = {
      name: 'x',
      kind: 'trainer',
      priority: 2,
      create: () => fakeTrainer('first'),
    } as const;
    registry.register(registration);
    registry.register(registration);
    registry.register({ ...registration, priority: 1, create: () => fakeTrainer('lower') });
    expect(() => registry.register({ ...registration, create: () => fakeTrainer('other') })).toThrow(
      expect.objectContaining({ code: 'BACKEND_CONFLICT' }),
    );
    expect((await registry.resolve('trainer')).backend.name).toBe('first');
    registry.register({ ...registration, priority: 3, create: () => fakeTrainer('higher') });
    expect((await registry.resolve('trainer')).backend.name).toBe('higher');
    expect(registry.list()).toHaveLength(1);
    expect(registry.unregister('trainer', 'x')).toBe(true);
    expect(registry.list()).toHaveLength(0);
  });

  it('rejects malformed registrations with every problem named', () => {
    const registry = createBackendRegistry();
    expect(() =>
      registry.register({
        name: '',
        kind: 'gpu' as 'trainer',
        priority: Number.NaN,
        create: 3 as unknown as () => TrainerBackend,
      }),
    ).toThrow(
      'Invalid backend registration: name must be a non-empty string; kind must be one of trainer, rollout, found gpu; priority must be a finite number, found NaN; create must be a function',
    );
  });

  it('keeps one global registry per process', () => {
    expect(globalBackendRegistry()).toBe(globalBackendRegistry());
  });
});
