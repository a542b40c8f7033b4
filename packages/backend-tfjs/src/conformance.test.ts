import { createReferenceRolloutEngine } from '@moerl/testkit';
import { describePolicyTrainerConformance, describeReplayParity } from '@moerl/testkit/vitest';
import { createTfjsPolicyTrainer, TFJS_TRAINER_CAPABILITIES } from './trainer/tfjs-policy-trainer.js';

// The wasm backend: quick to start and the one these machines can run besides the pure-JS cpu backend.
const backendOptions = { backends: ['tfjs-wasm'], onWarning: () => {} };

describePolicyTrainerConformance({
  name: 'tfjs (wasm)',
  capabilities: TFJS_TRAINER_CAPABILITIES,
  create: (options) => createTfjsPolicyTrainer({ ...options, backendOptions }),
});

describeReplayParity({
  name: 'reference engine + tfjs trainer (wasm)',
  createEngine: async (options) => createReferenceRolloutEngine(options),
  createTrainer: (options) => createTfjsPolicyTrainer({ ...options, backendOptions }),
  capabilities: { engineRecordsRouting: true, trainerReplaysRouting: true, trainerRecordsRouting: true },
});
