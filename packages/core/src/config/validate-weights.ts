import { MoerlError } from '../errors/moerl-error.js';
import type { DType } from '../tensors/dtype.js';
import { bfloat16BitsToFloat32, float16BitsToFloat32 } from '../tensors/half-precision.js';
import { elementCount, type HostTensor, type NamedTensors } from '../tensors/tensor.js';
import type { ModelConfig } from './model-config.js';
import { expectedWeights } from './weight-names.js';

export interface ValidateWeightsOptions {
  /** Element types a backend accepts. Default: the float types F32, F16, BF16. */
  readonly dtypes?: readonly DType[];
  /** Names the caller, e.g. "Reference model weights". Default "Weights". */
  readonly subject?: string;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/**
 * Checks that `weights` holds exactly `expectedWeights(config)`: every name present, of an accepted dtype and
 * the right shape, with as many values as the shape says, and nothing else. Throws `CHECKPOINT_INVALID`
 * listing every problem (the first 20 in the message); `details` names the first weight at fault. Then every
 * value must be finite: the first NaN or ±Infinity is a `NON_FINITE` error naming the tensor and index.
 */
export function validateWeights(
  config: ModelConfig,
  weights: NamedTensors,
  options: ValidateWeightsOptions = {},
): void {
  const subject = options.subject ?? 'Weights';
  const dtypes = options.dtypes ?? ['F32', 'F16', 'BF16'];
  if (!(weights instanceof Map)) {
    throw new MoerlError('CHECKPOINT_INVALID', `${subject} must be a Map of name → HostTensor`);
  }
  const problems: string[] = [];
  let first: Record<string, unknown> | undefined;
  const report = (message: string, details: Record<string, unknown>) => {
    problems.push(message);
    first ??= details;
  };
  const expectedNames = new Set<string>();
  for (const spec of expectedWeights(config)) {
    expectedNames.add(spec.name);
    const tensor = weights.get(spec.name);
    if (tensor === undefined) {
      report(`${spec.name}: missing (expected ${dtypes.join('/')} ${shapeText(spec.shape)})`, {
        weight: spec.name,
        expected: spec.shape,
        found: null,
      });
    } else if (!dtypes.includes(tensor.dtype)) {
      report(`${spec.name}: dtype ${tensor.dtype}, expected ${dtypes.join(' or ')}`, {
        weight: spec.name,
        expected: dtypes,
        found: tensor.dtype,
      });
    } else if (
      tensor.shape.length !== spec.shape.length ||
      tensor.shape.some((size, axis) => size !== spec.shape[axis])
    ) {
      report(`${spec.name}: shape ${shapeText(tensor.shape)}, expected ${shapeText(spec.shape)}`, {
        weight: spec.name,
        expected: spec.shape,
        found: tensor.shape,
      });
    } else if (tensor.data.length !== elementCount(spec.shape)) {
      report(`${spec.name}: ${tensor.data.length} values for shape ${shapeText(spec.shape)}`, {
        weight: spec.name,
        expected: spec.shape,
        found: tensor.data.length,
      });
    }
  }
  for (const name of weights.keys()) {
    if (!expectedNames.has(name))
      report(`${name}: unexpected weight for this config`, { weight: name, unexpected: true });
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 20);
    const more = problems.length > shown.length ? `\n  … and ${problems.length - shown.length} more` : '';
    throw new MoerlError(
      'CHECKPOINT_INVALID',
      `${subject} do not match the config:\n  - ${shown.join('\n  - ')}${more}`,
      { details: { ...first, problems } },
    );
  }
  assertFiniteTensors(weights, subject);
}

/**
 * Throws `NON_FINITE` at the first NaN or ±Infinity of any float tensor (F32, F16, BF16), naming
 * `subject`, the tensor, the index and the value. Integer tensors are skipped.
 */
export function assertFiniteTensors(tensors: NamedTensors, subject = 'Tensors'): void {
  for (const [name, tensor] of tensors) {
    const index = firstNonFinite(tensor);
    if (index >= 0) {
      const value = valueAt(tensor, index);
      throw new MoerlError(
        'NON_FINITE',
        `${subject}: ${name} must be finite, found ${value} at index ${index} (of ${tensor.data.length}, shape ${shapeText(tensor.shape)})`,
        { details: { weight: name, index, found: String(value) } },
      );
    }
  }
}

/** Index of the first NaN or ±Infinity in a float tensor, or -1. F16/BF16 are checked on their bits. */
function firstNonFinite(tensor: HostTensor): number {
  const { data } = tensor;
  if (tensor.dtype === 'F32') {
    for (let index = 0; index < data.length; index++) {
      // Multiplying by 0 gives 0 for finite values and NaN for NaN and ±Infinity.
      if ((data as Float32Array)[index]! * 0 !== 0) return index;
    }
    return -1;
  }
  // Exponent bits all set: Infinity or NaN.
  const mask = tensor.dtype === 'F16' ? 0x7c00 : tensor.dtype === 'BF16' ? 0x7f80 : 0;
  if (mask === 0) return -1;
  const bits = data as Uint16Array;
  for (let index = 0; index < bits.length; index++) if ((bits[index]! & mask) === mask) return index;
  return -1;
}

function valueAt(tensor: HostTensor, index: number): number {
  const raw = tensor.data[index]!;
  if (tensor.dtype === 'F16') return float16BitsToFloat32(raw as number);
  if (tensor.dtype === 'BF16') return bfloat16BitsToFloat32(raw as number);
  return Number(raw);
}
