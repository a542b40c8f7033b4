import type { ModelConfig } from '@moerl/core';
import { encodeModel } from '../onnx/onnx-proto.js';
import {
  type ActivationPrecision,
  buildMoeGraph,
  type ComputeType,
  type ExpertCompute,
  type ExpertLayout,
  type WeightSource,
  weightsAsInputs,
} from './build-moe-graph.js';

/** The default opset: the newest that Debian's python3-onnx checker knows, and all the graph needs. */
export const ONNX_OPSET = 17;
/** IR version 8 is the one that goes with opset 17. */
export const ONNX_IR_VERSION = 8;

/** The serialised ONNX model of `config`; weights are graph inputs unless `weightSource` says otherwise. */
export function encodeMoeModel(
  config: ModelConfig,
  weightSource: WeightSource = weightsAsInputs,
  expertLayout: ExpertLayout = 'per-expert',
  computeType: ComputeType = 'float32',
  expertCompute: ExpertCompute = 'sparse',
  activations: ActivationPrecision = 'fp32',
): Uint8Array {
  return encodeModel({
    irVersion: ONNX_IR_VERSION,
    producerName: '@moerl/backend-onnx',
    producerVersion: '0.0.0',
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    graph: buildMoeGraph(config, weightSource, expertLayout, computeType, expertCompute, activations),
  });
}
