import { defineMoerlTestConfig } from '../../vitest.shared.ts';

export default defineMoerlTestConfig('example-custom-algorithm');
