import { describe, expect, it } from 'vitest';
import { exactReward, extractNumericAnswer, numericReward, regexReward } from './answer-rewards.js';

describe('answer rewards', () => {
  it('pull the final number out of GSM8K, \\boxed and plain answers', () => {
    // GSM8K's reference format: reasoning, then "#### answer".
    expect(extractNumericAnswer('48/2 = <<48/2=24>>24 clips in May.\n48+24 = 72\n#### 72')).toBe('72');
    expect(extractNumericAnswer('so the total is \\boxed{1,234} dollars')).toBe('1234');
    expect(extractNumericAnswer('first \\boxed{3}, corrected: \\boxed{-4.5}')).toBe('-4.5');
    expect(extractNumericAnswer('I think 12, no wait, 15')).toBe('15');
    expect(extractNumericAnswer('no digits here')).toBeUndefined();
  });

  it('score responses against reference answers', () => {
    expect(numericReward('The answer is 72.', '#### 72')).toBe(1);
    expect(numericReward('#### 72.0', '72')).toBe(1);
    expect(numericReward('#### 71', '72')).toBe(0);
    expect(numericReward('no idea', '72')).toBe(0);
    expect(exactReward(' dcba\n', 'dcba')).toBe(1);
    expect(exactReward('dcb', 'dcba')).toBe(0);
    expect(regexReward(/answer: (\w+)/, 'the answer: yes', 'yes')).toBe(1);
    expect(regexReward(/answer: (\w+)/, 'the answer: no', 'yes')).toBe(0);
    expect(regexReward(/^\d+$/, '123', 'anything')).toBe(1);
    expect(regexReward(/^\d+$/, '12a', 'anything')).toBe(0);
  });
});
