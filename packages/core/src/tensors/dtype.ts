/** Element types a checkpoint tensor may have (safetensors names). */
export const DTYPES = ['F32', 'F16', 'BF16', 'I64', 'I32', 'U16', 'U8'] as const;
export type DType = (typeof DTYPES)[number];

export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  U16: 2,
  U8: 1,
};

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && (DTYPES as readonly string[]).includes(value);
}
