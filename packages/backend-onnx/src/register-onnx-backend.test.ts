import { createBackendRegistry, listBackends, type MoerlError, resolveBackend } from '@moerl/core';
import { conformanceFixture } from '@moerl/testkit';
import { describe, expect, it } from 'vitest';
import type { OnnxRolloutEngine } from './engine/onnx-rollout-engine.js';
import { createOnnxBackend, engineOptionsFrom, registerOnnxBackend } from './register-onnx-backend.js';

describe('registerOnnxBackend', () => {
  it('makes the onnx rollout backend resolvable, and its engines work', async () => {
    registerOnnxBackend();
    registerOnnxBackend(); // idempotent
    // onnxruntime-node first, onnxruntime-web (its WebAssembly build) as the fallback, once each.
    expect(
      listBackends('rollout')
        .filter((entry) => entry.name.startsWith('onnx'))
        .map((entry) => [entry.name, entry.priority]),
    ).toEqual([
      ['onnx', 10],
      ['onnx-web', 10],
    ]);
    expect((await resolveBackend('rollout')).summary).toBe('rollout backend: onnx');
    const resolved = await resolveBackend('rollout', { preferred: 'onnx' });
    expect(resolved.summary).toBe('rollout backend: onnx');
    const { config, weights } = conformanceFixture();
    const engine = await resolved.backend.createEngine({
      config,
      weights,
      precision: 'bf16',
      backendOptions: { prefixCache: false, activations: 'bf16' },
    });
    expect(engine.backendName).toBe('onnx');
    expect(engine.capabilities.prefixCache).toBe(false);
    expect((engine as OnnxRolloutEngine).activations).toBe('bf16');
    await engine.dispose();
  });

  it('onnx-web resolves by name, and its engines run on onnxruntime-web', async () => {
    const registry = createBackendRegistry();
    registerOnnxBackend(10, registry);
    const resolved = await registry.resolve('rollout', { preferred: 'onnx-web' });
    expect(resolved.backend.name).toBe('onnx-web');
    const { config, weights } = conformanceFixture();
    const engine = await resolved.backend.createEngine({ config, weights });
    expect((engine as { runtime?: string }).runtime).toBe('onnxruntime-web');
    await engine.dispose();
  });

  it('works in a private registry too', async () => {
    const registry = createBackendRegistry();
    registry.register({ name: 'onnx', kind: 'rollout', priority: 1, create: createOnnxBackend });
    expect((await registry.resolve('rollout')).name).toBe('onnx');
  });

  it('rejects unknown backendOptions, naming the key', () => {
    const { config, weights } = conformanceFixture();
    expect(() => engineOptionsFrom({ config, weights, backendOptions: { prefixCashe: true } })).toThrowError(
      expect.objectContaining({
        code: 'INVALID_ARGUMENT',
        message: expect.stringContaining('prefixCashe'),
      }) as MoerlError,
    );
  });
});
