export { type CheckpointWeightSyncOptions, checkpointWeightSync } from './client/checkpoint-weight-sync.js';
export {
  createHttpRolloutEngine,
  type HttpRolloutEngine,
  type HttpRolloutEngineOptions,
  type HttpTrajectory,
} from './client/http-rollout-engine.js';
export { type PlannedCall, planCalls, requestSeed } from './client/plan-calls.js';
export type { Balancing } from './client/server-pool.js';
export {
  type DecodedGeneration,
  decodeSglangGenerateItem,
  decodeSglangGenerateResponse,
  decodeSglangGenerateStream,
  decodeSglangOpenAiRouting,
  decodeSglangRoutedExperts,
  type SglangOpenAiRouting,
  type SglangRequestContext,
  type WeightVersionSpan,
} from './protocols/sglang.js';
export {
  type DecodedVllmChoice,
  decodeVllmChoiceRouting,
  decodeVllmCompletionResponse,
  decodeVllmStreamRouting,
  importVllmRoutingDump,
  type VllmChoiceContext,
  type VllmCompletionContext,
} from './protocols/vllm.js';
export {
  routingFromWire,
  routingToHiddenLayers,
  type WireRouting,
  type WireRoutingExpectation,
} from './routing/wire-routing.js';
export {
  type GenerateBody,
  generateBodySchema,
  type UpdateWeightsBody,
  updateWeightsBodySchema,
} from './server/generate-schema.js';
export { loadCheckpointWeights } from './server/load-checkpoint-weights.js';
export {
  createSglangServer,
  type SglangServer,
  type SglangServerOptions,
  type SglangServerStats,
  type Tokenizer,
} from './server/sglang-server.js';
export { type CompletionsBody, completionsBodySchema } from './server/vllm-completions-schema.js';
export { encodeVllmRoutedExperts, vllmRoutingDtype } from './server/vllm-routed-experts.js';
export { decodeBase64, encodeBase64 } from './wire/base64.js';
export { type NpyArray, type NpyWriteDtype, parseNpy, writeNpy } from './wire/npy.js';
