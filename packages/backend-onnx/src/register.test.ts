import { globalBackendRegistry, listBackends } from '@moerl/core';
import { expect, it } from 'vitest';

it('importing the ./register entry registers the onnx rollout backend', async () => {
  globalBackendRegistry().unregister('rollout', 'onnx');
  expect(listBackends('rollout').map((entry) => entry.name)).not.toContain('onnx');
  await import('./register.js');
  expect(listBackends('rollout').map((entry) => entry.name)).toContain('onnx');
});
