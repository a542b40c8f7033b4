import { listBackends } from '@moerl/core';
import { expect, it } from 'vitest';

it('importing ./register registers the four tfjs trainer backends, best first', async () => {
  expect(listBackends('trainer').some((info) => info.name.startsWith('tfjs'))).toBe(false);
  await import('./register.js');
  expect(
    listBackends('trainer')
      .filter((info) => info.name.startsWith('tfjs'))
      .map((info) => [info.name, info.state]),
  ).toEqual([
    ['tfjs-node-gpu', 'untried'],
    ['tfjs-node', 'untried'],
    ['tfjs-wasm', 'untried'],
    ['tfjs-cpu', 'untried'],
  ]);
});
