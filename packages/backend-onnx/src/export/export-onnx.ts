import {
  expectedWeights,
  type InferencePrecision,
  type ModelConfig,
  MoerlError,
  type NamedTensors,
  roundToBfloat16,
  toFloat32,
  validateModelConfig,
  validateWeights,
  writeFileAtomic,
} from '@moerl/core';
import { type WeightSource, weightsAsInputs } from '../model/build-moe-graph.js';
import { encodeMoeModel } from '../model/encode-moe-model.js';
import { float32TensorMessage } from '../onnx/graph-builder.js';

export interface ExportOnnxOptions {
  /** `fp32` (default) stores the weights as given; `bf16` stores them rounded to bfloat16 (still float32). */
  readonly precision?: Extract<InferencePrecision, 'fp32' | 'bf16'>;
}

/**
 * The ONNX model of `config` as bytes. With `weights`, they are stored in the file as initializers (a
 * self-contained model for Netron or any ONNX runtime); without, every weight is a graph input named as in
 * the checkpoint. Opset 17, IR version 8.
 */
export function encodeOnnxModel(
  config: ModelConfig,
  weights?: NamedTensors,
  options: ExportOnnxOptions = {},
): Uint8Array {
  validateModelConfig(config);
  if (weights === undefined) return encodeMoeModel(config, weightsAsInputs);
  const precision = options.precision ?? 'fp32';
  if (precision !== 'fp32' && precision !== 'bf16') {
    throw new MoerlError(
      'UNSUPPORTED',
      `exportOnnx precision must be fp32 or bf16, found ${String(precision)}`,
      {
        details: { field: 'precision', found: precision },
      },
    );
  }
  validateWeights(config, weights, { subject: 'exportOnnx weights' });
  const shapes = new Map(expectedWeights(config).map((spec) => [spec.name, spec.shape]));
  const fromWeights: WeightSource = (graph, name) => {
    const values = toFloat32(weights.get(name)!);
    return graph.initializer(
      float32TensorMessage(name, shapes.get(name)!, precision === 'bf16' ? roundToBfloat16(values) : values),
    );
  };
  return encodeMoeModel(config, fromWeights);
}

/** Writes `encodeOnnxModel(config, weights)` to `path` (atomically). */
export async function exportOnnx(
  config: ModelConfig,
  weights: NamedTensors | undefined,
  path: string,
  options: ExportOnnxOptions = {},
): Promise<void> {
  await writeFileAtomic(path, encodeOnnxModel(config, weights, options));
}
