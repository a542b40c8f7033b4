import { describe, expect, it } from 'vitest';
import { filterUniformGroups } from './dynamic-sampling.js';

describe('filterUniformGroups', () => {
  it('drops groups whose rewards are all equal, a group of one included', () => {
    const result = filterUniformGroups(['a', 'b', 'a', 'b', 'c', 'd', 'd'], [1, 1, 0, 1, 3, 0.5, 0.25]);
    expect(result.keptGroups).toEqual(['a', 'd']);
    expect(result.droppedGroups).toEqual(['b', 'c']);
    expect(Array.from(result.keepResponse)).toEqual([1, 0, 1, 0, 0, 1, 1]);
    expect(result.droppedGroupFraction).toBe(0.5);
  });

  it('rejects rewards of the wrong length', () => {
    expect(() => filterUniformGroups(['a', 'b'], [1])).toThrow(
      expect.objectContaining({
        code: 'INVALID_ARGUMENT',
        details: expect.objectContaining({ field: 'rewards' }),
      }),
    );
  });
});
