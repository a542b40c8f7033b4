export {
  fromHfConfig,
  type HfQwen3MoeConfigJson,
  readHfConfigFile,
  toHfConfig,
  writeHfConfigFile,
} from './config/hf-config.js';
export {
  createModelConfig,
  isMoeLayer,
  MODEL_CONFIG_DEFAULTS,
  type ModelConfig,
  type ModelConfigInput,
  modelConfigProblems,
  moeLayerIndices,
  validateModelConfig,
} from './config/model-config.js';
export {
  assertFiniteTensors,
  type ValidateWeightsOptions,
  validateWeights,
} from './config/validate-weights.js';
export { expectedWeights, type WeightSpec } from './config/weight-names.js';
export type {
  BackendKind,
  BackendKinds,
  CreateEngineOptions,
  CreateTrainerOptions,
  RolloutBackend,
  TrainerBackend,
} from './contracts/backend.js';
export type {
  InferencePrecision,
  PolicyTrainerCapabilities,
  RolloutEngineCapabilities,
} from './contracts/capabilities.js';
export type { Objective, ObjectiveInput, ObjectiveResult } from './contracts/objective.js';
export type {
  LogprobOptions,
  LogprobResult,
  PartialReplayOptions,
  PolicyTrainer,
  RoutingOptions,
  TrainingBatch,
  TrainingSequence,
  TrainStepOptions,
  TrainStepResult,
} from './contracts/policy-trainer.js';
export { REPLAY_MODES, type ReplayMode, type RoutingMode } from './contracts/replay-mode.js';
export type { GenerateRequest, RolloutEngine, RolloutEngineStats } from './contracts/rollout-engine.js';
export { DEFAULT_SAMPLING_PARAMS, type SamplingParams } from './contracts/sampling-params.js';
export { assertSupports, SPECIFICATION_VERSION } from './contracts/specification.js';
export type { FinishReason, RolloutGroup, Trajectory } from './contracts/trajectory.js';
export { MOERL_ERROR_CODES, type MoerlErrorCode } from './errors/error-codes.js';
export { assertMoerl, MoerlError, type MoerlErrorOptions } from './errors/moerl-error.js';
export { writeFileAtomic } from './io/write-file-atomic.js';
export {
  FP8_SCALE_SCHEMES,
  type Fp8ScaleScheme,
  type Fp8WeightOptions,
  isFp8QuantizedWeight,
  quantizeE4m3Weight,
  quantizeWeightsFp8,
  type ResolvedFp8WeightOptions,
  resolveFp8WeightOptions,
} from './quantization/fp8-weights.js';
export { createRandom, type SeededRandom } from './random/seeded-random.js';
export {
  type BackendInfo,
  type BackendRegistration,
  type BackendRegistry,
  createBackendRegistry,
  globalBackendRegistry,
  listBackends,
  type ResolvedBackend,
  type ResolveOptions,
  registerBackend,
  resolveBackend,
  type SkippedBackend,
} from './registry/backend-registry.js';
export { type RoutingDisagreement, routingDisagreement } from './routing/routing-disagreement.js';
export {
  concatRoutingRecords,
  createRoutingRecord,
  type ExpertIdArray,
  expertIdArrayFor,
  type RoutingExpectation,
  type RoutingRecord,
  type RoutingShape,
  routingRecordProblems,
  routingRow,
  sliceRoutingRecord,
  validateRoutingRecord,
} from './routing/routing-record.js';
export {
  MODEL_WEIGHTS_FILE,
  MODEL_WEIGHTS_INDEX,
  modelWeightsPath,
  readModelWeights,
} from './safetensors/read-model-weights.js';
export {
  MAX_SAFETENSORS_HEADER_BYTES,
  parseSafetensors,
  readSafetensorsFile,
  type SafetensorsContents,
} from './safetensors/read-safetensors.js';
export { serializeSafetensors, writeSafetensorsFile } from './safetensors/write-safetensors.js';
export { logSoftmax, type SampledToken, sampleToken } from './sampling/sample-token.js';
export { DTYPE_BYTES, DTYPES, type DType, isDType } from './tensors/dtype.js';
export { E4M3_MAX, e4m3BitsToFloat32, float32ToE4m3Bits, roundToE4m3 } from './tensors/fp8-e4m3.js';
export {
  bfloat16BitsToFloat32,
  type FloatTensor,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  fromFloat32,
  roundToBfloat16,
  toFloat32,
} from './tensors/half-precision.js';
export {
  elementCount,
  float32Tensor,
  type HostTensor,
  type NamedTensors,
  type TensorDataByDType,
} from './tensors/tensor.js';
export { crossEntropyObjective } from './training/cross-entropy-objective.js';
export { type PreparedTrainingSequence, prepareTrainingBatch } from './trajectory/prepare-training-batch.js';
export { sequenceTokens } from './trajectory/sequence-tokens.js';
