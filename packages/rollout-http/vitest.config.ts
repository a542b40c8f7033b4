import { defineMoerlTestConfig } from '../../vitest.shared.ts';

export default defineMoerlTestConfig('rollout-http');
