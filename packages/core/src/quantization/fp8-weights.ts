import { MoerlError } from '../errors/moerl-error.js';
import { E4M3_MAX, roundToE4m3 } from '../tensors/fp8-e4m3.js';
import { roundToBfloat16, toFloat32 } from '../tensors/half-precision.js';
import type { HostTensor, NamedTensors } from '../tensors/tensor.js';

/**
 * How FP8 scales are shared over an `[out, in]` weight: `block` (DeepSeek-V3 / Qwen3-FP8 style, one FP32
 * scale per `blockSize × blockSize` tile, the default), `channel` (one per output row) or `tensor` (one for
 * the whole weight).
 */
export type Fp8ScaleScheme = 'block' | 'channel' | 'tensor';
export const FP8_SCALE_SCHEMES: readonly Fp8ScaleScheme[] = ['block', 'channel', 'tensor'];

export interface Fp8WeightOptions {
  /** Default `block`. */
  readonly scheme?: Fp8ScaleScheme;
  /** Tile side of the `block` scheme; default 128. */
  readonly blockSize?: number;
  /**
   * Quantise the MoE router gate too. Off by default, as FP8 checkpoints of MoE models ship it (the gate is
   * small and its precision decides routing); turning it on raises router flips.
   */
  readonly quantizeRouterGate?: boolean;
  /**
   * Modules kept out of FP8 (vLLM's `ignore`): a weight is skipped when its module name (the weight name
   * without `.weight`) equals an entry or starts with an entry followed by `.`, e.g. `model.layers.0` or
   * `model.layers.3.self_attn.o_proj`.
   */
  readonly ignore?: readonly string[];
}

/** The resolved FP8 settings an engine reports. */
export interface ResolvedFp8WeightOptions {
  readonly scheme: Fp8ScaleScheme;
  readonly blockSize: number;
  readonly quantizeRouterGate: boolean;
  readonly ignore: readonly string[];
}

export function resolveFp8WeightOptions(options: Fp8WeightOptions = {}): ResolvedFp8WeightOptions {
  const scheme = options.scheme ?? 'block';
  if (!FP8_SCALE_SCHEMES.includes(scheme)) {
    throw new MoerlError(
      'CONFIG_INVALID',
      `fp8.scheme must be one of ${FP8_SCALE_SCHEMES.join(', ')}, found ${String(scheme)}`,
      { details: { field: 'fp8.scheme', found: scheme } },
    );
  }
  const blockSize = options.blockSize ?? 128;
  if (!Number.isInteger(blockSize) || blockSize < 1) {
    throw new MoerlError('CONFIG_INVALID', `fp8.blockSize must be a positive integer, found ${blockSize}`, {
      details: { field: 'fp8.blockSize', found: blockSize },
    });
  }
  return {
    scheme,
    blockSize,
    quantizeRouterGate: options.quantizeRouterGate ?? false,
    ignore: [...(options.ignore ?? [])],
  };
}

// Linear layers that FP8 checkpoints of Qwen3-MoE store in e4m3: attention projections, expert and dense
// MLP projections. Embeddings, the LM head, norms and biases never are.
const PROJECTION =
  /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(experts\.\d+\.)?(gate|up|down)_proj)\.weight$/;
const ROUTER_GATE = /^model\.layers\.\d+\.mlp\.gate\.weight$/;

/** Whether the FP8 setting stores this weight in e4m3 (others stay as the bf16 setting leaves them). */
export function isFp8QuantizedWeight(name: string, options: ResolvedFp8WeightOptions): boolean {
  const quantized = PROJECTION.test(name) || (options.quantizeRouterGate && ROUTER_GATE.test(name));
  if (!quantized) return false;
  const module = name.slice(0, -'.weight'.length);
  return !options.ignore.some((entry) => module === entry || module.startsWith(`${entry}.`));
}

/**
 * Fake-quantises a row-major `[rows, cols]` weight to FP8 E4M3 and back: per scale group, an FP32 scale
 * `amax / 448`, each value divided by it, rounded to e4m3 (nearest, ties to even, saturating) and
 * multiplied back. A group of zeros keeps scale 1. Returns the dequantised values and the scales
 * (`[ceil(rows/b), ceil(cols/b)]` for `block`, `[rows]` for `channel`, `[1]` for `tensor`).
 */
export function quantizeE4m3Weight(
  values: Float32Array,
  rows: number,
  cols: number,
  options: Pick<ResolvedFp8WeightOptions, 'scheme' | 'blockSize'>,
): { values: Float32Array; scales: Float32Array } {
  if (values.length !== rows * cols) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `quantizeE4m3Weight: [${rows}, ${cols}] needs ${rows * cols} values, found ${values.length}`,
      { details: { expected: rows * cols, found: values.length } },
    );
  }
  const tileRows = options.scheme === 'block' ? options.blockSize : options.scheme === 'channel' ? 1 : rows;
  const tileCols = options.scheme === 'block' ? options.blockSize : cols;
  const gridRows = Math.ceil(rows / tileRows);
  const gridCols = Math.ceil(cols / tileCols);
  const scales = new Float32Array(gridRows * gridCols);
  const out = new Float32Array(values.length);
  for (let tileRow = 0; tileRow < gridRows; tileRow++) {
    const rowEnd = Math.min(rows, (tileRow + 1) * tileRows);
    for (let tileCol = 0; tileCol < gridCols; tileCol++) {
      const colEnd = Math.min(cols, (tileCol + 1) * tileCols);
      let amax = 0;
      for (let row = tileRow * tileRows; row < rowEnd; row++) {
        for (let col = tileCol * tileCols; col < colEnd; col++) {
          amax = Math.max(amax, Math.abs(values[row * cols + col]!));
        }
      }
      const scale = amax === 0 ? 1 : Math.fround(amax / E4M3_MAX);
      scales[tileRow * gridCols + tileCol] = scale;
      for (let row = tileRow * tileRows; row < rowEnd; row++) {
        for (let col = tileCol * tileCols; col < colEnd; col++) {
          const index = row * cols + col;
          out[index] = Math.fround(roundToE4m3(Math.fround(values[index]! / scale)) * scale);
        }
      }
    }
  }
  return { values: out, scales };
}

/**
 * Checkpoint weights as an FP8 serving engine holds them, as float32: the quantised projections
 * (`isFp8QuantizedWeight`) fake-quantised to e4m3 with their scales, every other weight rounded to bf16.
 */
export function quantizeWeightsFp8(weights: NamedTensors, options: Fp8WeightOptions = {}): NamedTensors {
  const resolved = resolveFp8WeightOptions(options);
  const out: NamedTensors = new Map();
  for (const [name, tensor] of weights) {
    const values = toFloat32(tensor);
    let result: Float32Array;
    if (isFp8QuantizedWeight(name, resolved) && tensor.shape.length === 2) {
      result = quantizeE4m3Weight(values, tensor.shape[0]!, tensor.shape[1]!, resolved).values;
    } else {
      result = roundToBfloat16(values);
    }
    out.set(name, { dtype: 'F32', shape: [...tensor.shape], data: result } as HostTensor);
  }
  return out;
}
