import { DEFAULT_SAMPLING_PARAMS, type GenerateRequest } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { planCalls, requestSeed } from './plan-calls.js';

const request = (id: string, prompt: number[], seed?: number): GenerateRequest => ({
  id,
  groupId: 'g',
  promptIds: Int32Array.from(prompt),
  ...(seed === undefined ? {} : { samplingParams: { seed } }),
});

describe('planCalls', () => {
  it('sends each prompt group as a leader call and one call of the rest', () => {
    const requests = [
      request('a0', [1, 2]),
      request('b0', [3]),
      request('a1', [1, 2]),
      request('a2', [1, 2]),
    ];
    const calls = planCalls(requests, { ...DEFAULT_SAMPLING_PARAMS, seed: 5 });
    expect(calls.map((call) => call.indices)).toEqual([[0], [2, 3], [1]]);
    expect(calls[1]!.leads).toBe(calls[0]);
    expect(calls.map((call) => call.seed)).toEqual([requestSeed(5, 0), requestSeed(5, 2), requestSeed(5, 1)]);
  });

  it('keeps requests with their own params apart', () => {
    const requests = [request('a0', [1]), request('a1', [1], 9), request('a2', [1], 9)];
    const calls = planCalls(requests, DEFAULT_SAMPLING_PARAMS);
    expect(calls.map((call) => call.indices)).toEqual([[0], [1], [2]]);
    expect(calls[1]!.params.seed).toBe(9);
    expect(calls[1]!.seed).toBe(requestSeed(9, 1));
  });

  it('derives distinct seeds per position and call seed', () => {
    const seeds = new Set([0, 1, 2, 3].flatMap((seed) => [0, 1, 2].map((index) => requestSeed(seed, index))));
    expect(seeds.size).toBe(12);
  });
});
