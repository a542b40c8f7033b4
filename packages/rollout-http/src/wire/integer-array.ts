import { MoerlError } from '@moerl/core';

/** Integer element types that appear on the wire. */
export type WireIntegerType = 'uint8' | 'uint16' | 'int16' | 'int32' | 'int8' | 'uint32';

export const WIRE_INTEGER_BYTES: Readonly<Record<WireIntegerType, number>> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  int32: 4,
  uint32: 4,
};

/**
 * Reads `bytes` as integers of `type` in the given byte order into an Int32Array (wide enough for every
 * id and for −1 markers). uint32 values above 2^31 − 1 become negative and fail range validation later.
 */
export function readIntegers(
  bytes: Uint8Array,
  type: WireIntegerType,
  littleEndian: boolean,
  field: string,
): Int32Array {
  const size = WIRE_INTEGER_BYTES[type];
  if (bytes.byteLength % size !== 0) {
    throw new MoerlError(
      'ROUTING_SHAPE',
      `${field}: ${bytes.byteLength} bytes is not a whole number of ${type} values (${size} bytes each)`,
      { details: { field, bytes: bytes.byteLength, dtype: type } },
    );
  }
  const count = bytes.byteLength / size;
  const out = new Int32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let index = 0; index < count; index++) {
    const offset = index * size;
    switch (type) {
      case 'uint8':
        out[index] = view.getUint8(offset);
        break;
      case 'int8':
        out[index] = view.getInt8(offset);
        break;
      case 'uint16':
        out[index] = view.getUint16(offset, littleEndian);
        break;
      case 'int16':
        out[index] = view.getInt16(offset, littleEndian);
        break;
      case 'int32':
        out[index] = view.getInt32(offset, littleEndian);
        break;
      case 'uint32':
        out[index] = view.getUint32(offset, littleEndian) | 0;
        break;
    }
  }
  return out;
}

/** Writes integers as little-endian `type` bytes (what our server sends). */
export function writeIntegersLE(values: ArrayLike<number>, type: 'uint8' | 'uint16' | 'int32'): Uint8Array {
  const size = WIRE_INTEGER_BYTES[type];
  const bytes = new Uint8Array(values.length * size);
  const view = new DataView(bytes.buffer);
  for (let index = 0; index < values.length; index++) {
    const value = values[index]!;
    if (type === 'uint8') view.setUint8(index, value);
    else if (type === 'uint16') view.setUint16(index * 2, value, true);
    else view.setInt32(index * 4, value, true);
  }
  return bytes;
}
