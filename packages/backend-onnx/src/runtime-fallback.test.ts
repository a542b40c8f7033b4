import { createBackendRegistry, DEFAULT_SAMPLING_PARAMS } from '@moerl/core';
import { conformanceFixture } from '@moerl/testkit';
import { describe, expect, it, vi } from 'vitest';
import { createOnnxRolloutEngine } from './engine/onnx-rollout-engine.js';
import { loadOnnxRuntime } from './engine/ort-runtime.js';
import { registerOnnxBackend } from './register-onnx-backend.js';

// As on a machine where a plain `npm install @moerl/backend-onnx` left out the optional peer: importing
// onnxruntime-node fails as Node fails for a missing package.
vi.mock('onnxruntime-node', () => {
  throw Object.assign(new Error("Cannot find package 'onnxruntime-node' imported from /app/index.js"), {
    code: 'ERR_MODULE_NOT_FOUND',
  });
});

describe('without onnxruntime-node', () => {
  it('auto falls back to onnxruntime-web and says why', async () => {
    const runtime = await loadOnnxRuntime('auto');
    expect(runtime.name).toBe('onnxruntime-web');
    expect(runtime.skipped.map((skip) => skip.name)).toEqual(['onnxruntime-node']);
    expect(runtime.summary).toMatch(
      /^onnx runtime: onnxruntime-web \d+\.\d+\.\d+\S* \(WebAssembly CPU; skipped onnxruntime-node: (not installed|failed to load \(.+\))\)$/,
    );
  });

  it('node is BACKEND_UNAVAILABLE naming the package and what to do', async () => {
    await expect(loadOnnxRuntime('node')).rejects.toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
      message: expect.stringMatching(
        /^No onnxruntime could be loaded: onnxruntime-node .*npm install onnxruntime-node/,
      ),
    });
  });

  it('the engine runs on onnxruntime-web and reports it', async () => {
    const { config, weights } = conformanceFixture();
    const engine = await createOnnxRolloutEngine({ config, weights });
    try {
      expect(engine.runtime).toBe('onnxruntime-web');
      expect(engine.runtimeSummary).toContain('skipped onnxruntime-node');
      const [trajectory] = await engine.generate(
        [{ id: 'a', groupId: 'g', promptIds: Int32Array.of(1, 2, 3) }],
        { ...DEFAULT_SAMPLING_PARAMS, maxNewTokens: 3, seed: 1 },
      );
      expect(trajectory!.responseIds.length).toBe(3);
    } finally {
      await engine.dispose();
    }
  });

  it('the registry skips `onnx` and resolves `onnx-web`, saying why in its summary line', async () => {
    const registry = createBackendRegistry();
    registerOnnxBackend(10, registry);
    const resolved = await registry.resolve('rollout');
    expect(resolved.name).toBe('onnx-web');
    expect(resolved.summary).toMatch(
      /^rollout backend: onnx-web \(skipped onnx: No onnxruntime could be loaded: onnxruntime-node /,
    );
    const { config, weights } = conformanceFixture();
    const engine = await resolved.backend.createEngine({
      config,
      weights,
      backendOptions: { prefixCache: false },
    });
    expect((engine as { runtime?: string }).runtime).toBe('onnxruntime-web');
    await engine.dispose();
  });
});
