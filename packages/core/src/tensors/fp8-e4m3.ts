/**
 * OCP FP8 E4M3 ("e4m3fn", the format FP8 serving engines store weights in): 1 sign bit, 4 exponent bits
 * (bias 7), 3 mantissa bits, no infinities, one NaN per sign (`S.1111.111`). Largest finite value 448,
 * smallest normal 2^-6, smallest subnormal 2^-9.
 */
export const E4M3_MAX = 448;
const MIN_NORMAL_EXPONENT = -6;
const MANTISSA_BITS = 3;

/** Rounds half to even an integer-valued-or-half float64 (exact for the ranges used here). */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** The binade exponent e with 2^e ≤ magnitude < 2^(e+1), exact for any positive finite float64. */
function binadeExponent(magnitude: number): number {
  let exponent = Math.floor(Math.log2(magnitude));
  if (2 ** exponent > magnitude) exponent -= 1;
  else if (2 ** (exponent + 1) <= magnitude) exponent += 1;
  return exponent;
}

/**
 * `x` rounded to the nearest E4M3 value, ties to even, saturating: magnitudes beyond 448 (±Infinity
 * included) become ±448, so a finite or infinite input never produces NaN; NaN stays NaN. Signed zero is
 * kept.
 */
export function roundToE4m3(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const magnitude = Math.abs(x);
  if (magnitude === 0) return x;
  const sign = x < 0 ? -1 : 1;
  if (magnitude >= E4M3_MAX) return sign * E4M3_MAX;
  // One unit in the last place: 2^(e-3) in the normal range, 2^-9 for subnormals. Dividing by a power of
  // two is exact, so the rounding below sees the exact quotient.
  const exponent = Math.max(binadeExponent(magnitude), MIN_NORMAL_EXPONENT);
  const quantum = 2 ** (exponent - MANTISSA_BITS);
  const rounded = roundHalfEven(magnitude / quantum) * quantum;
  // A carry can reach 480 only from above 448, which saturated already; clamp anyway for safety.
  return sign * Math.min(rounded, E4M3_MAX);
}

/** The 8-bit E4M3 code of `roundToE4m3(x)` (NaN → 0x7f, or 0xff when its sign bit is set). */
export function float32ToE4m3Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7f;
  const value = roundToE4m3(x);
  const sign = value < 0 || Object.is(value, -0) ? 0x80 : 0;
  const magnitude = Math.abs(value);
  if (magnitude === 0) return sign;
  const exponent = binadeExponent(magnitude);
  if (exponent < MIN_NORMAL_EXPONENT) return sign | (magnitude / 2 ** (MIN_NORMAL_EXPONENT - MANTISSA_BITS));
  const mantissa = magnitude / 2 ** exponent - 1; // in [0, 1), a multiple of 1/8
  return sign | ((exponent + 7) << MANTISSA_BITS) | (mantissa * 8);
}

/** The value of an E4M3 code (only the low 8 bits of `bits` are used). */
export function e4m3BitsToFloat32(bits: number): number {
  const code = bits & 0xff;
  const sign = code & 0x80 ? -1 : 1;
  const exponent = (code >> MANTISSA_BITS) & 0xf;
  const mantissa = code & 0x7;
  if (exponent === 0xf && mantissa === 0x7) return Number.NaN;
  if (exponent === 0) return sign * mantissa * 2 ** (MIN_NORMAL_EXPONENT - MANTISSA_BITS);
  return sign * (1 + mantissa / 8) * 2 ** (exponent - 7);
}
