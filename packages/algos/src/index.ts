export { type DynamicSamplingResult, filterUniformGroups } from './advantages/dynamic-sampling.js';
export {
  type AdvantageResult,
  type GrpoAdvantageOptions,
  grpoAdvantages,
} from './advantages/grpo-advantages.js';
export {
  type ReinforcePlusPlusOptions,
  reinforcePlusPlusAdvantages,
  reinforcePlusPlusBaselineAdvantages,
  type TokenAdvantageResult,
  whitenMasked,
} from './advantages/reinforce-plus-plus.js';
export type { RewardBatch } from './advantages/reward-batch.js';
export { rlooAdvantages } from './advantages/rloo-advantages.js';
export {
  assertGradientMatches,
  checkObjectiveGradient,
  compareGradients,
  finiteDifferenceGradient,
  type GradientComparison,
  type ObjectiveGradientCheck,
  type ObjectiveGradientCheckOptions,
} from './gradient-check/gradient-check.js';
export { type CispoConfig, cispoLoss } from './losses/cispo-loss.js';
export { type GspoConfig, gspoLoss } from './losses/gspo-loss.js';
export { gspoTokenLoss } from './losses/gspo-token-loss.js';
export {
  type ImportanceSamplingConfig,
  type ImportanceWeights,
  importanceWeights,
} from './losses/importance-sampling.js';
export {
  applyKlPenalty,
  canonicalKlEstimator,
  KL_ESTIMATORS,
  type KlEstimator,
  type KlLossResult,
  klLoss,
  klTerm,
} from './losses/kl-estimators.js';
export {
  aggregateLoss,
  aggregationWeights,
  type GlobalBatch,
  globalBatchOf,
  LOSS_AGG_MODES,
  type LossAggMode,
} from './losses/loss-aggregation.js';
export type { PolicyLossInputs, PolicyLossResult } from './losses/policy-loss-inputs.js';
export { type PpoClipConfig, ppoClipLoss } from './losses/ppo-clip-loss.js';
export { type SapoConfig, sapoLoss } from './losses/sapo-loss.js';
export {
  type LogprobMismatch,
  type LogprobMismatchInput,
  type LogprobMismatchOptions,
  logprobMismatch,
  logprobMismatchMetrics,
  type PositionMismatch,
} from './mismatch/logprob-mismatch.js';
export {
  type RoutingMismatch,
  type RoutingPair,
  routingMismatch,
  routingMismatchMetrics,
} from './mismatch/routing-mismatch.js';
export { createPolicyObjective, type ObjectiveOptions } from './objectives/create-policy-objective.js';
export {
  BUILT_IN_OBJECTIVES,
  createObjective,
  createObjectiveRegistry,
  ICEPOP_BAND,
  listObjectives,
  type ObjectiveFactory,
  type ObjectiveRegistry,
  type RegisterObjectiveOptions,
  registerObjective,
} from './objectives/objective-registry.js';
export {
  computePolicyObjective,
  type EvaluateOptions,
  type KlLossConfig,
  POLICY_LOSSES,
  type PolicyBatch,
  type PolicyLossName,
  type PolicyObjectiveConfig,
  type PolicyObjectiveEvaluation,
  type PreparedPolicyObjective,
  preparePolicyObjective,
} from './objectives/policy-objective.js';
export {
  type OffPolicyInput,
  type OffPolicyMetrics,
  offPolicyMetrics,
} from './rollout-correction/off-policy-metrics.js';
export {
  REJECTION_OPTIONS,
  type RejectionCriterion,
  type RejectionOption,
  type RolloutCorrection,
  type RolloutCorrectionConfig,
  type RolloutCorrectionInput,
  type RolloutIsConfig,
  rolloutCorrection,
} from './rollout-correction/rollout-correction.js';
export type { NumberArray } from './validation/checks.js';
