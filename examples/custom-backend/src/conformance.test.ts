// The testkit's PolicyTrainer conformance suite, run on the backend as the registry hands it out.
import { resolveBackend } from '@moerl/core';
import { describePolicyTrainerConformance } from '@moerl/testkit/vitest';
import { registerPlainTsBackend } from './backend.js';
import { PLAIN_TS_BACKEND_NAME, PLAIN_TS_CAPABILITIES } from './plain-ts-trainer.js';

registerPlainTsBackend();

describePolicyTrainerConformance({
  name: PLAIN_TS_BACKEND_NAME,
  create: async (options) => {
    const { backend } = await resolveBackend('trainer', { preferred: PLAIN_TS_BACKEND_NAME });
    return backend.createTrainer(options);
  },
  capabilities: PLAIN_TS_CAPABILITIES,
});
