export {
  describePolicyTrainerConformance,
  describeRolloutEngineConformance,
} from './describe-conformance.js';
