import { describe, expect, it } from 'vitest';
import { reinforcePlusPlusAdvantages, reinforcePlusPlusBaselineAdvantages } from './reinforce-plus-plus.js';

describe('reinforcePlusPlusAdvantages', () => {
  it('discounts the response reward back from the last token, then whitens over the batch', () => {
    const { tokenAdvantages } = reinforcePlusPlusAdvantages(
      { sequenceOffsets: [0, 2, 3], groupIds: ['p', 'q'], rewards: [1, 2] },
      { gamma: 0.5 },
    );
    // Returns [0.5, 1, 2]: mean 7/6, unbiased variance 7/12.
    const scale = 1 / Math.sqrt(7 / 12 + 1e-8);
    [-2 / 3, -1 / 6, 5 / 6].forEach((value, t) => {
      expect(tokenAdvantages[t]).toBeCloseTo(value * scale, 12);
    });
  });

  it('puts the reward on the last unmasked token and whitens over unmasked tokens only', () => {
    const { tokenAdvantages } = reinforcePlusPlusAdvantages({
      sequenceOffsets: [0, 2, 3],
      groupIds: ['p', 'q'],
      rewards: [1, 2],
      responseMask: [1, 0, 1],
    });
    // Returns [1, (masked), 2]: mean 1.5, unbiased variance 0.5.
    const scale = 1 / Math.sqrt(0.5 + 1e-8);
    expect(tokenAdvantages[0]).toBeCloseTo(-0.5 * scale, 12);
    expect(tokenAdvantages[1]).toBe(0);
    expect(tokenAdvantages[2]).toBeCloseTo(0.5 * scale, 12);
  });

  it('uses token rewards as given', () => {
    const { tokenAdvantages } = reinforcePlusPlusAdvantages({
      sequenceOffsets: [0, 3],
      groupIds: ['p'],
      tokenRewards: [1, 0, 1],
    });
    // gamma 1: returns [2, 1, 1]; mean 4/3; unbiased variance (4/9 + 1/9 + 1/9)/2 = 1/3.
    const scale = 1 / Math.sqrt(1 / 3 + 1e-8);
    [2 / 3, -1 / 3, -1 / 3].forEach((value, t) => {
      expect(tokenAdvantages[t]).toBeCloseTo(value * scale, 12);
    });
  });
});

describe('reinforcePlusPlusBaselineAdvantages', () => {
  it('subtracts the group mean, then whitens over every token of the batch', () => {
    const { tokenAdvantages } = reinforcePlusPlusBaselineAdvantages({
      sequenceOffsets: [0, 1, 3, 4],
      groupIds: ['g', 'g', 'solo'],
      rewards: [1, 0, 4],
    });
    // Centred per token: [0.5, −0.5, −0.5, 4 (a group of one keeps its reward)]; mean 3.5/4 = 0.875.
    const centred = [0.5, -0.5, -0.5, 4];
    const mean = 0.875;
    const variance = centred.reduce((sum, x) => sum + (x - mean) ** 2, 0) / 3;
    centred.forEach((value, t) => {
      expect(tokenAdvantages[t]).toBeCloseTo((value - mean) / Math.sqrt(variance + 1e-8), 12);
    });
  });

  it('gives zeros when all rewards are equal', () => {
    const { tokenAdvantages } = reinforcePlusPlusBaselineAdvantages({
      sequenceOffsets: [0, 2, 3],
      groupIds: ['g', 'g'],
      rewards: [3, 3],
    });
    expect(Array.from(tokenAdvantages)).toEqual([0, 0, 0]);
  });
});
