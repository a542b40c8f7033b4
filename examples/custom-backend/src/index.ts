export { plainTsTrainerBackend, type RegisterPlainTsOptions, registerPlainTsBackend } from './backend.js';
export { createPlainTsTrainer, PLAIN_TS_BACKEND_NAME, PLAIN_TS_CAPABILITIES } from './plain-ts-trainer.js';
