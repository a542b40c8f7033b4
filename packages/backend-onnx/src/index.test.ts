import { listBackends } from '@moerl/core';
import { expect, it } from 'vitest';

it('importing the package has no side effects: the backend registry is unchanged', async () => {
  const before = listBackends();
  const api = await import('./index.js');
  expect(typeof api.createOnnxRolloutEngine).toBe('function');
  expect(typeof api.registerOnnxBackend).toBe('function');
  expect(listBackends()).toEqual(before);
});
