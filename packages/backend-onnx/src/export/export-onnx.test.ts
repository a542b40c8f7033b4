import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MoerlError } from '@moerl/core';
import {
  createRandomWeights,
  createReferenceModel,
  tinyConfigs,
  tinyMoeConfig,
  tinyTokens,
} from '@moerl/testkit';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRAPH_IO } from '../model/build-moe-graph.js';
import { decodeModel } from '../onnx/onnx-proto.js';
import { encodeOnnxModel, exportOnnx } from './export-onnx.js';

// Debian's python3-onnx lives in the system interpreter, which a pyenv `python3` on PATH may hide.
function pythonWithOnnx(): string | undefined {
  for (const python of ['python3', '/usr/bin/python3']) {
    const probe = spawnSync(python, ['-c', 'import onnx'], { encoding: 'utf8' });
    if (probe.status === 0) return python;
  }
  return undefined;
}
const python = pythonWithOnnx();

let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'moerl-onnx-export-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('exportOnnx', () => {
  it('writes a self-contained model whose logits and routing equal the reference', async () => {
    const config = tinyMoeConfig;
    const weights = createRandomWeights(config, 3);
    const path = join(directory, 'tiny.onnx');
    await exportOnnx(config, weights, path);
    const decoded = decodeModel(await readFile(path)) as {
      opsetImport: Array<{ version: number }>;
      graph: { initializer: Array<{ name: string }>; input: Array<{ name: string }> };
    };
    expect(decoded.opsetImport[0]!.version).toBe(17);
    expect(decoded.graph.initializer.some((tensor) => tensor.name === 'model.layers.1.mlp.gate.weight')).toBe(
      true,
    );
    expect(decoded.graph.input.some((input) => input.name.startsWith('model.'))).toBe(false);

    const session = await ort.InferenceSession.create(path);
    const n = tinyTokens.length;
    const int64 = (values: number[]) =>
      new ort.Tensor('int64', BigInt64Array.from(values, BigInt), [1, values.length]);
    const bias = new Float32Array(n * n);
    for (let query = 0; query < n; query++)
      for (let slot = query + 1; slot < n; slot++) bias[query * n + slot] = -1e30;
    const empty = () =>
      new ort.Tensor('float32', new Float32Array(0), [1, config.numKeyValueHeads, 0, config.headDim]);
    const feeds: Record<string, ort.Tensor> = {
      [GRAPH_IO.inputIds]: int64([...tinyTokens]),
      [GRAPH_IO.positionIds]: int64(tinyTokens.map((_, index) => index)),
      [GRAPH_IO.attentionBias]: new ort.Tensor('float32', bias, [1, n, n]),
      [GRAPH_IO.logitRows]: new ort.Tensor(
        'int64',
        BigInt64Array.from({ length: n }, (_, index) => BigInt(index)),
        [n],
      ),
    };
    for (let layer = 0; layer < config.numLayers; layer++) {
      feeds[GRAPH_IO.pastKey(layer)] = empty();
      feeds[GRAPH_IO.pastValue(layer)] = empty();
    }
    const out = await session.run(feeds);
    const reference = createReferenceModel(config, weights).forward(tinyTokens);
    const logits = out[GRAPH_IO.logits]!.data as Float32Array;
    let scale = 0;
    for (const value of reference.logits) scale = Math.max(scale, Math.abs(value));
    for (let index = 0; index < logits.length; index++)
      expect(Math.abs(logits[index]! - reference.logits[index]!) / scale).toBeLessThan(1e-4);
    expect(Array.from(out[GRAPH_IO.routing]!.data as BigInt64Array, Number)).toEqual([
      ...reference.routing.experts,
    ]);
    await session.release();
  });

  it('without weights, every checkpoint tensor is a graph input', () => {
    const decoded = decodeModel(encodeOnnxModel(tinyMoeConfig)) as {
      graph: { initializer?: Array<{ name: string }>; input: Array<{ name: string }> };
    };
    const inputs = decoded.graph.input.map((input) => input.name);
    expect(inputs).toContain('model.layers.0.mlp.experts.3.down_proj.weight');
    expect(inputs).toContain('lm_head.weight');
  });

  it('rejects weights that do not match the config', () => {
    const weights = createRandomWeights(tinyMoeConfig, 3);
    weights.delete('lm_head.weight');
    expect(() => encodeOnnxModel(tinyMoeConfig, weights)).toThrowError(
      expect.objectContaining({ code: 'CHECKPOINT_INVALID' }) as MoerlError,
    );
  });

  describe.skipIf(python === undefined)(
    'the official ONNX checker (skipped when neither python3 nor /usr/bin/python3 can `import onnx`; install Debian python3-onnx)',
    () => {
      for (const [name, config] of Object.entries(tinyConfigs)) {
        it(`${name}: onnx.checker.check_model accepts the exported file (full check)`, async () => {
          const path = join(directory, `${name}.onnx`);
          await exportOnnx(config, createRandomWeights(config, 1), path);
          const script = `import onnx, sys; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); print('ok', m.opset_import[0].version)`;
          const result = spawnSync(python!, ['-c', script, path], { encoding: 'utf8' });
          expect(result.stderr).toBe('');
          expect(result.stdout.trim()).toBe('ok 17');
        });
      }
    },
  );
});
