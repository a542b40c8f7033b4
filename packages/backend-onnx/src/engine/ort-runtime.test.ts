import type { MoerlError } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { loadOnnxRuntime, type OnnxRuntimeOption } from './ort-runtime.js';

describe('loadOnnxRuntime', () => {
  it('auto takes onnxruntime-node when it is installed (it is, as a dev dependency here), and says so', async () => {
    const runtime = await loadOnnxRuntime();
    expect(runtime.name).toBe('onnxruntime-node');
    expect(runtime.skipped).toEqual([]);
    expect(runtime.summary).toBe(`onnx runtime: onnxruntime-node ${runtime.version} (native)`);
    expect(runtime.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('web loads onnxruntime-web, whose tensors and sessions share onnxruntime-common’s API', async () => {
    const runtime = await loadOnnxRuntime('web');
    expect(runtime.name).toBe('onnxruntime-web');
    expect(runtime.summary).toBe(`onnx runtime: onnxruntime-web ${runtime.version} (WebAssembly CPU)`);
    const tensor = new runtime.ort.Tensor('float32', Float32Array.of(1, 2), [2]);
    expect(tensor.dims).toEqual([2]);
    expect(typeof runtime.ort.InferenceSession.create).toBe('function');
  });

  it('node loads onnxruntime-node only; the same package twice is the same module', async () => {
    const [a, b] = await Promise.all([loadOnnxRuntime('node'), loadOnnxRuntime('node')]);
    expect(a.name).toBe('onnxruntime-node');
    expect(a.ort).toBe(b.ort);
  });

  it('an unknown option is INVALID_ARGUMENT naming the field and the choices', async () => {
    await expect(loadOnnxRuntime('wasm' as OnnxRuntimeOption)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'runtime must be one of auto, node, web, found wasm',
    } satisfies Partial<MoerlError>);
  });
});
