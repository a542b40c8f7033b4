export {
  type ConformanceCase,
  ConformanceError,
  check,
  checkClose,
  checkRejects,
  maxAbsDifference,
  moerlErrorCodeOf,
  partitionCases,
} from './conformance/conformance-case.js';
export {
  type ConformanceFixture,
  conformanceFixture,
} from './conformance/conformance-fixture.js';
export {
  negativeMeanLogprobObjective,
  type PolicyTrainerCase,
  type PolicyTrainerSubject,
  policyTrainerCases,
  referenceBatchLogprobs,
} from './conformance/policy-trainer-cases.js';
export {
  type ReplayParityCase,
  type ReplayParitySubject,
  replayParityCases,
} from './conformance/replay-parity-cases.js';
export {
  type RolloutEngineCase,
  type RolloutEngineSubject,
  rolloutEngineCases,
} from './conformance/rollout-engine-cases.js';
export {
  demoShapedMoeConfig,
  smallMoeConfig,
  tinyBiasedTiedConfig,
  tinyConfigs,
  tinyDenseAndSparseConfig,
  tinyMoeConfig,
  tinyTokens,
} from './fixtures/tiny-config.js';
export {
  type ReferenceLogprobsOptions,
  type ReferenceLogprobsResult,
  referenceLogprobs,
} from './reference/reference-logprobs.js';
export {
  createReferenceModel,
  type ReferenceActivations,
  type ReferenceForwardOptions,
  type ReferenceForwardResult,
  type ReferenceModel,
  type ReferenceModelOptions,
} from './reference/reference-model.js';
export { createReferencePolicyTrainer } from './reference/reference-policy-trainer.js';
export { createReferenceRolloutEngine } from './reference/reference-rollout-engine.js';
export { createRandomWeights, type RandomWeightsOptions } from './weights/random-weights.js';
