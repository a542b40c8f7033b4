export {
  type CispoConfig,
  type CispoInputs,
  type CispoLossResult,
  cispoLoss,
} from './cispo-loss.js';
export { CISPO_DEFAULT_CLIP_RATIO_HIGH, createCispoObjective } from './cispo-objective.js';
export { CISPO_OBJECTIVE_NAME, registerCispo } from './register-cispo.js';
