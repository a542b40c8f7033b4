import { MoerlError } from '../errors/moerl-error.js';
import { elementCount, type HostTensor } from './tensor.js';

// One shared 4-byte scratch: writing a number to `scratchFloat` and reading `scratchBits` gives its float32
// bit pattern (and vice versa) without allocating. Typed arrays use host byte order on both views, so the
// reinterpretation is endian-independent.
const scratchFloat = new Float32Array(1);
const scratchBits = new Uint32Array(scratchFloat.buffer);

/** Float32 bit pattern → float16 bit pattern, rounding to nearest, ties to even. */
function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) {
    // Inf stays Inf. NaN keeps its sign and top payload bits, with the quiet bit set so that a signalling
    // NaN whose payload sits only in the low bits cannot turn into Inf.
    return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  }
  const halfExponent = exponent - 112; // rebias 127 → 15
  if (halfExponent >= 31) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Below 2^-25 everything (float32 subnormals included) rounds to zero; 2^-25 itself ties to even → 0.
    if (halfExponent < -10) return sign;
    // Float16 subnormal: shift the full significand so that one unit is 2^-24, then round the dropped bits.
    const significand = mantissa | 0x800000;
    const shift = 14 - halfExponent; // 14..24
    let result = significand >>> shift;
    const remainder = significand & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (remainder > half || (remainder === half && (result & 1) === 1)) result += 1;
    // A carry out of the subnormal range yields 0x0400, which is exactly the smallest normal.
    return sign | result;
  }
  let result = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  // A carry propagates into the exponent; past 65504 it lands on 0x7c00 = Inf, so ≥ 65520 gives Inf.
  if (remainder > 0x1000 || (remainder === 0x1000 && (result & 1) === 1)) result += 1;
  return sign | result;
}

/** Float16 bit pattern → float32 bit pattern (exact: every float16 is a float32). */
function f16BitsToF32Bits(bits: number): number {
  const sign = (bits & 0x8000) << 16;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal mantissa · 2^-24 is a float32 normal: move its leading one to the implicit bit position.
  const leading = 31 - Math.clz32(mantissa); // 0..9, value = 2^(leading - 24) · 1.xxx
  return (sign | ((leading + 103) << 23) | ((mantissa << (23 - leading)) & 0x7fffff)) >>> 0;
}

/** Float32 bit pattern → bfloat16 bit pattern (the top half), rounding to nearest, ties to even. */
function f32BitsToBf16Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) {
    // NaN: keep sign and top payload; set the quiet bit, else a payload only in the low half would become Inf.
    return (bits >>> 16) | 0x0040;
  }
  // Adding 0x7fff (+1 when the kept LSB is odd) rounds half to even; overflow carries into Inf correctly.
  return ((bits >>> 0) + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

// 65536 float16 → float32 bit patterns (256 KiB), built on first use of the array path.
let f16Table: Uint32Array | undefined;
function float16Table(): Uint32Array {
  if (f16Table === undefined) {
    f16Table = new Uint32Array(0x10000);
    for (let bits = 0; bits < 0x10000; bits++) f16Table[bits] = f16BitsToF32Bits(bits);
  }
  return f16Table;
}

/** Rounds `x` to float32, then to the nearest float16 (ties to even), and returns its 16-bit pattern. */
export function float32ToFloat16Bits(x: number): number {
  scratchFloat[0] = x;
  return f32BitsToF16Bits(scratchBits[0]!);
}

/** The value of a float16 bit pattern (only the low 16 bits of `bits` are used). */
export function float16BitsToFloat32(bits: number): number {
  scratchBits[0] = f16BitsToF32Bits(bits & 0xffff);
  return scratchFloat[0]!;
}

/** Rounds `x` to float32, then to the nearest bfloat16 (ties to even), and returns its 16-bit pattern. */
export function float32ToBfloat16Bits(x: number): number {
  scratchFloat[0] = x;
  return f32BitsToBf16Bits(scratchBits[0]!);
}

/** The value of a bfloat16 bit pattern (only the low 16 bits of `bits` are used). */
export function bfloat16BitsToFloat32(bits: number): number {
  scratchBits[0] = (bits & 0xffff) << 16;
  return scratchFloat[0]!;
}

// A Float32Array's byteOffset is always a multiple of 4, so a Uint32Array view over it is always valid.
function bitsView(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

/**
 * The tensor's values as a new Float32Array (never aliasing `tensor.data`). F16/BF16 are decoded exactly and
 * bit-wise, so NaN payloads and signs survive; integer dtypes are converted to the nearest float32 (I64 via
 * the nearest float64 first, which can differ from direct rounding only beyond 2^24 in magnitude).
 */
export function toFloat32(tensor: HostTensor): Float32Array {
  switch (tensor.dtype) {
    case 'F32':
      return tensor.data.slice();
    case 'F16': {
      const table = float16Table();
      const out = new Float32Array(tensor.data.length);
      const outBits = bitsView(out);
      for (let index = 0; index < tensor.data.length; index++) outBits[index] = table[tensor.data[index]!]!;
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(tensor.data.length);
      const outBits = bitsView(out);
      for (let index = 0; index < tensor.data.length; index++) outBits[index] = tensor.data[index]! << 16;
      return out;
    }
    case 'I64': {
      const out = new Float32Array(tensor.data.length);
      for (let index = 0; index < tensor.data.length; index++) out[index] = Number(tensor.data[index]!);
      return out;
    }
    case 'I32':
    case 'U16':
    case 'U8':
      return Float32Array.from(tensor.data);
  }
}

/** Tensor of dtype `D` built from float32 values. */
export type FloatTensor<D extends 'F32' | 'F16' | 'BF16'> = Extract<HostTensor, { dtype: D }>;

/**
 * Builds an F32, F16 or BF16 tensor from float32 values, rounding to nearest, ties to even. `values` is
 * copied, never aliased.
 */
export function fromFloat32<D extends 'F32' | 'F16' | 'BF16'>(
  values: Float32Array,
  dtype: D,
  shape: readonly number[],
): FloatTensor<D> {
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `fromFloat32: dtype must be F32, F16 or BF16, found ${String(dtype)}`,
      {
        details: { found: dtype },
      },
    );
  }
  const size = elementCount(shape);
  if (values.length !== size) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `fromFloat32: shape [${shape.join(', ')}] needs ${size} values, found ${values.length}`,
      { details: { expected: size, found: values.length, dtype } },
    );
  }
  const copiedShape = [...shape];
  if (dtype === 'F32') return { dtype: 'F32', shape: copiedShape, data: values.slice() } as FloatTensor<D>;
  const inBits = bitsView(values);
  const out = new Uint16Array(values.length);
  const convert = dtype === 'F16' ? f32BitsToF16Bits : f32BitsToBf16Bits;
  for (let index = 0; index < values.length; index++) out[index] = convert(inBits[index]!);
  return { dtype, shape: copiedShape, data: out } as FloatTensor<D>;
}

/**
 * Each value rounded to the nearest bfloat16 (ties to even) and widened back, as a new array: lets float32
 * math emulate bf16 storage, e.g. of activations during bf16 inference.
 */
export function roundToBfloat16(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length);
  const inBits = bitsView(values);
  const outBits = bitsView(out);
  for (let index = 0; index < values.length; index++)
    outBits[index] = f32BitsToBf16Bits(inBits[index]!) << 16;
  return out;
}
