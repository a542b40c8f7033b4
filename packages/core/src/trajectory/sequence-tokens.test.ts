import { describe, expect, it } from 'vitest';
import { sequenceTokens } from './sequence-tokens.js';

describe('sequenceTokens', () => {
  it('joins prompt and response in order', () => {
    expect([...sequenceTokens({ promptIds: Int32Array.of(4, 5), responseIds: [6, 7, 8] })]).toEqual([
      4, 5, 6, 7, 8,
    ]);
    expect(sequenceTokens({ promptIds: [1], responseIds: [] }).length).toBe(1);
  });
});
