import { describe, expect, it } from 'vitest';
import { rlooAdvantages } from './rloo-advantages.js';

describe('rlooAdvantages', () => {
  it('subtracts the mean of the other responses; equal rewards give 0; a group of one keeps its reward', () => {
    const { sequenceAdvantages, tokenAdvantages } = rlooAdvantages({
      sequenceOffsets: [0, 1, 2, 3, 4, 5, 7, 8],
      groupIds: [7, 7, 8, 7, 9, 8, 7],
      rewards: [1, 0, 2, 0, 5, 2, 1],
    });
    // Group 7 = [1, 0, 0, 1]: 1 − (0 + 0 + 1)/3 = 2/3 and 0 − (1 + 0 + 1)/3 = −2/3.
    const expected = [2 / 3, -2 / 3, 0, -2 / 3, 5, 0, 2 / 3];
    expected.forEach((value, i) => {
      expect(sequenceAdvantages[i]).toBeCloseTo(value, 12);
    });
    expect(tokenAdvantages[5]).toBe(0);
    expect(tokenAdvantages[6]).toBe(0);
  });
});
