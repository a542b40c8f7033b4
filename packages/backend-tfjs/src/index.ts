// The supervised objective lives in core; re-exported here, where users of supervisedStep look for it.
export { crossEntropyObjective } from '@moerl/core';
export {
  createTfjsBackend,
  registerTfjsBackend,
  TFJS_BACKEND_PRIORITIES,
  type TfjsBackendOptions,
  type TfjsTrainerBackend,
} from './backend.js';
export type { ExpertComputation } from './model/forward.js';
export {
  activateTfjsBackend,
  activeTfjsBackend,
  selectTfjsBackend,
  TFJS_BACKEND_ORDER,
  type TfjsBackendName,
  type TfjsBackendSelection,
} from './runtime/tfjs-runtime.js';
export { ADAMW_DEFAULTS, type AdamWOptions } from './trainer/adamw.js';
export { attachRouting } from './trainer/attach-routing.js';
export { type LearningRateSchedule, learningRateAt } from './trainer/learning-rate-schedule.js';
export {
  createTfjsPolicyTrainer,
  DEFAULT_LEARNING_RATE,
  TFJS_TRAINER_CAPABILITIES,
  type TfjsPolicyTrainer,
  type TfjsTrainerStats,
} from './trainer/tfjs-policy-trainer.js';
export type { TfjsTrainerOptions } from './trainer/trainer-options.js';
