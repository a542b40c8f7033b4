import { MoerlError } from '../errors/moerl-error.js';
import type { DType } from '../tensors/dtype.js';
import { elementCount, type NamedTensors } from '../tensors/tensor.js';
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
 * listing every problem (the first 20 in the message); `details` names the first weight at fault.
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
}
