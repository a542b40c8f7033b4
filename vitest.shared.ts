import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

// Tests run against package sources (the `@moerl/source` export condition), so no build is needed
// between an edit and a test run. Each run also leaves a JSON report that `.ci/run` sums up.
const conditions = ['@moerl/source', ...defaultServerConditions];

export function defineMoerlTestConfig(name: string) {
  return defineConfig({
    resolve: { conditions },
    ssr: { resolve: { conditions, externalConditions: ['@moerl/source'] } },
    test: {
      name,
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      reporters: ['default', ['json', { outputFile: '.vitest-report.json' }]],
      testTimeout: 60_000,
    },
  });
}
