import { createBackendRegistry, listBackends } from '@moerl/core';
import { conformanceFixture } from '@moerl/testkit';
import { describe, expect, it } from 'vitest';
import { createTfjsBackend, registerTfjsBackend } from './backend.js';
import * as entry from './index.js';
import { selectTfjsBackend } from './runtime/tfjs-runtime.js';

describe('backend selection and registration', () => {
  it('importing the main entry registers nothing', () => {
    expect(typeof entry.registerTfjsBackend).toBe('function');
    expect(listBackends('trainer').filter((info) => info.name.startsWith('tfjs'))).toEqual([]);
  });

  it('selectTfjsBackend skips the uninstalled tfjs-node packages, naming why, and takes wasm', async () => {
    const selection = await selectTfjsBackend();
    expect(selection.name).toBe('tfjs-wasm');
    expect(selection.skipped.map((skip) => skip.name)).toEqual(['tfjs-node-gpu', 'tfjs-node']);
    expect(selection.summary).toMatch(
      /^tfjs backend: tfjs-wasm \(skipped tfjs-node-gpu: .*@tensorflow\/tfjs-node-gpu/,
    );
    // One short line per missing package with the install hint, not the resolver's paths.
    expect(selection.summary).toContain('@tensorflow/tfjs-node not installed (npm i @tensorflow/tfjs-node)');
    expect(selection.summary).not.toContain('imported from');
  });

  it('registers node-gpu, node, wasm, cpu in that order; resolving picks the best that loads', async () => {
    const registry = createBackendRegistry();
    registerTfjsBackend(registry);
    registerTfjsBackend(registry); // twice is harmless
    expect(registry.list('trainer').map((info) => info.name)).toEqual([
      'tfjs-node-gpu',
      'tfjs-node',
      'tfjs-wasm',
      'tfjs-cpu',
    ]);
    const resolved = await registry.resolve('trainer');
    expect(resolved.name).toBe('tfjs-wasm');
    expect(resolved.skipped.map((skip) => skip.name)).toEqual(['tfjs-node-gpu', 'tfjs-node']);
    const { config, weights } = conformanceFixture();
    const trainer = await resolved.backend.createTrainer({ config, weights });
    expect(trainer.backendName).toBe('tfjs:tfjs-wasm');
    await trainer.dispose();
  });

  it('the pure cpu backend computes the same logprobs as wasm', async () => {
    const { config, weights, batch } = conformanceFixture();
    const onWasm = await createTfjsBackend({ backends: ['tfjs-wasm'] }).createTrainer({ config, weights });
    const wasm = await onWasm.logprobs(batch, { routing: 'free' });
    await onWasm.dispose();
    const onCpu = await createTfjsBackend({ backends: ['tfjs-cpu'] }).createTrainer({ config, weights });
    expect(onCpu.backendName).toBe('tfjs:tfjs-cpu');
    const cpu = await onCpu.logprobs(batch, { routing: 'free' });
    await onCpu.dispose();
    for (let index = 0; index < wasm.logprobs.length; index++) {
      expect(cpu.logprobs[index]).toBeCloseTo(wasm.logprobs[index]!, 4);
    }
  });
});
