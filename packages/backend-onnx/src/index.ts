export type { PositionKv, PrefixMatch, PrefixStore, PrefixStoreStats } from './cache/prefix-store.js';
export type { ExecutionProvider, ExpertComputeOption } from './engine/moe-session.js';
export {
  createOnnxRolloutEngine,
  ONNX_BACKEND_NAME,
  type OnnxRolloutEngine,
  type OnnxRolloutEngineOptions,
  type OnnxTrajectory,
  type PrefixCacheOptions,
} from './engine/onnx-rollout-engine.js';
export {
  type LoadedOnnxRuntime,
  loadOnnxRuntime,
  ONNX_RUNTIME_OPTIONS,
  type OnnxRuntimeName,
  type OnnxRuntimeOption,
  type SkippedRuntime,
} from './engine/ort-runtime.js';
export { type ExportOnnxOptions, encodeOnnxModel, exportOnnx } from './export/export-onnx.js';
export { type ActivationPrecision, type ExpertCompute, GRAPH_IO } from './model/build-moe-graph.js';
export { ONNX_IR_VERSION, ONNX_OPSET } from './model/encode-moe-model.js';
export {
  createOnnxBackend,
  engineOptionsFrom,
  ONNX_WEB_BACKEND_NAME,
  type OnnxBackendOptions,
  registerOnnxBackend,
} from './register-onnx-backend.js';
