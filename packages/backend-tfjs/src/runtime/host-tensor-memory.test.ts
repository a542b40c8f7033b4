import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { hostValues, tensorFilledBy } from './host-tensor-memory.js';
import { activateTfjsBackend, type TfjsBackendName } from './tfjs-runtime.js';

afterAll(async () => {
  await activateTfjsBackend('tfjs-wasm');
});

describe.each(['tfjs-wasm', 'tfjs-cpu'] as TfjsBackendName[])('host tensor memory on %s', (name) => {
  it('reads a tensor’s values and makes a tensor filled in place, leaking nothing', async () => {
    await activateTfjsBackend(name);
    const before = tf.memory().numTensors;
    const source = tf.tensor([1.5, -2, 3.25, 0], [2, 2]);
    expect([...hostValues(source)]).toEqual([1.5, -2, 3.25, 0]);
    const made = tensorFilledBy([2, 3], (values) => {
      expect(values.length).toBe(6);
      values.forEach((_, index) => {
        values[index] = index * 0.5;
      });
    });
    expect(made.shape).toEqual([2, 3]);
    expect(made.dtype).toBe('float32');
    expect([...(await made.data())]).toEqual([0, 0.5, 1, 1.5, 2, 2.5]);
    // A new tensor's memory is its own: filling it leaves the source alone.
    expect([...(await source.data())]).toEqual([1.5, -2, 3.25, 0]);
    tf.dispose([source, made]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

it('reads a tensor made on another backend (tfjs moves it)', async () => {
  await activateTfjsBackend('tfjs-cpu');
  const onCpu = tf.tensor([4, 5, 6]);
  await activateTfjsBackend('tfjs-wasm');
  expect([...hostValues(onCpu)]).toEqual([4, 5, 6]);
  onCpu.dispose();
});
