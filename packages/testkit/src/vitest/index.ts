// The names issue #3 gave the suites; kept as aliases so either reads naturally in a backend's tests.
export {
  describePolicyTrainerConformance,
  describePolicyTrainerConformance as describeTrainerBackend,
  describeReplayParity,
  describeRolloutEngineConformance,
  describeRolloutEngineConformance as describeRolloutEngine,
} from './describe-conformance.js';
