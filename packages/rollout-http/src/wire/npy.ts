import { MoerlError } from '@moerl/core';
import { readIntegers, type WireIntegerType } from './integer-array.js';

/** A decoded `.npy` integer array, always in C (row-major) order. */
export interface NpyArray {
  readonly shape: readonly number[];
  readonly values: Int32Array;
  /** The dtype named in the header, e.g. `|u1` or `>u2`. */
  readonly descr: string;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
// NumPy aligns the data to 64 bytes and reserves room for the growth axis (the first, in C order) to reach
// 21 digits, so that appending rows can rewrite the header in place (numpy/lib/format.py).
const ARRAY_ALIGN = 64;
const GROWTH_AXIS_MAX_DIGITS = 21;

const DTYPES: Readonly<Record<string, WireIntegerType>> = {
  u1: 'uint8',
  i1: 'int8',
  u2: 'uint16',
  i2: 'int16',
  i4: 'int32',
  u4: 'uint32',
};

function fail(field: string, message: string): never {
  throw new MoerlError('ROUTING_SHAPE', `${field}: ${message}`, { details: { field } });
}

/**
 * Parses a NumPy `.npy` file (format versions 1.0, 2.0 and 3.0) of integers. Reads dtype, byte order,
 * shape and `fortran_order` from the header; Fortran-ordered data is reordered to C order.
 */
export function parseNpy(bytes: Uint8Array, field = 'npy'): NpyArray {
  if (bytes.byteLength < 10 || MAGIC.some((byte, index) => bytes[index] !== byte)) {
    fail(field, 'expected a .npy file (magic \\x93NUMPY), found other bytes');
  }
  const major = bytes[6]!;
  const minor = bytes[7]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLength: number;
  let headerStart: number;
  if (major === 1 && minor === 0) {
    headerLength = view.getUint16(8, true);
    headerStart = 10;
  } else if ((major === 2 || major === 3) && minor === 0) {
    if (bytes.byteLength < 12) fail(field, 'truncated .npy header');
    headerLength = view.getUint32(8, true);
    headerStart = 12;
  } else {
    fail(field, `unsupported .npy format version ${major}.${minor}; expected 1.0, 2.0 or 3.0`);
  }
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.byteLength) fail(field, `header of ${headerLength} bytes runs past the file end`);
  const decoder = new TextDecoder(major === 3 ? 'utf-8' : 'latin1');
  const header = decoder.decode(bytes.subarray(headerStart, dataStart));
  const { descr, fortranOrder, shape } = parseHeader(header, field);

  const order = descr[0];
  const code = descr.slice(1);
  const type = DTYPES[code];
  if (type === undefined || (order !== '<' && order !== '>' && order !== '|' && order !== '=')) {
    fail(field, `unsupported dtype '${descr}'; expected an integer dtype such as |u1, <u2, <i2 or <i4`);
  }
  if (order === '|' && type !== 'uint8' && type !== 'int8') {
    fail(field, `dtype '${descr}' has no byte order although its items are wider than one byte`);
  }
  const count = shape.reduce((product, size) => product * size, 1);
  const data = bytes.subarray(dataStart);
  const itemBytes = type === 'uint8' || type === 'int8' ? 1 : type === 'uint16' || type === 'int16' ? 2 : 4;
  if (data.byteLength !== count * itemBytes) {
    fail(
      field,
      `shape (${shape.join(', ')}) of ${descr} needs ${count * itemBytes} data bytes, found ${data.byteLength}`,
    );
  }
  // '=' is native order; every platform Node runs on here is little-endian.
  const values = readIntegers(data, type, order !== '>', field);
  return { shape, descr, values: fortranOrder ? fortranToC(values, shape) : values };
}

function parseHeader(
  header: string,
  field: string,
): { descr: string; fortranOrder: boolean; shape: number[] } {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    fail(field, `malformed .npy header (needs descr, fortran_order and shape): ${header.trim()}`);
  }
  const shape = shapeText
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0)
    .map((part) => {
      const size = Number(part.replace(/L$/, ''));
      if (!Number.isSafeInteger(size) || size < 0) fail(field, `bad dimension '${part}' in shape`);
      return size;
    });
  return { descr, fortranOrder: fortran === 'True', shape };
}

/** Fortran order stores the first axis fastest; rewrite to C order (last axis fastest). */
function fortranToC(values: Int32Array, shape: readonly number[]): Int32Array {
  const out = new Int32Array(values.length);
  const rank = shape.length;
  const index = new Array<number>(rank).fill(0);
  for (let c = 0; c < values.length; c++) {
    // Fortran offset of the C-order multi-index.
    let offset = 0;
    let stride = 1;
    for (let axis = 0; axis < rank; axis++) {
      offset += index[axis]! * stride;
      stride *= shape[axis]!;
    }
    out[c] = values[offset]!;
    for (let axis = rank - 1; axis >= 0; axis--) {
      index[axis]!++;
      if (index[axis]! < shape[axis]!) break;
      index[axis] = 0;
    }
  }
  return out;
}

/** The dtypes `writeNpy` produces: what vLLM sends for routing (`|u1`, `<u2`) and int32. */
export type NpyWriteDtype = '|u1' | '<u2' | '<i4';

const WRITE_RANGES: Readonly<Record<NpyWriteDtype, readonly [number, number]>> = {
  '|u1': [0, 255],
  '<u2': [0, 65535],
  '<i4': [-(2 ** 31), 2 ** 31 - 1],
};

/**
 * Writes a C-order integer array as a `.npy` file, format version 1.0, with the header NumPy's `np.save`
 * writes byte for byte (keys sorted, growth-axis spare space, space padding to a 64-byte boundary, `\n`).
 */
export function writeNpy(
  values: Int32Array | Uint8Array | Uint16Array,
  shape: readonly number[],
  dtype: NpyWriteDtype,
): Uint8Array {
  const count = shape.reduce((product, size) => {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `writeNpy shape: expected non-negative integers, found ${size}`,
      );
    }
    return product * size;
  }, 1);
  if (count !== values.length) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `writeNpy values: shape (${shape.join(', ')}) holds ${count} items, found ${values.length}`,
    );
  }
  const [min, max] = WRITE_RANGES[dtype];
  const itemBytes = dtype === '|u1' ? 1 : dtype === '<u2' ? 2 : 4;
  const data = new Uint8Array(count * itemBytes);
  const view = new DataView(data.buffer);
  for (let index = 0; index < count; index++) {
    const value = values[index]!;
    if (value < min || value > max) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `writeNpy values[${index}]: ${dtype} holds [${min}, ${max}], found ${value}`,
      );
    }
    if (itemBytes === 1) view.setUint8(index, value);
    else if (itemBytes === 2) view.setUint16(index * 2, value, true);
    else view.setInt32(index * 4, value, true);
  }
  const header = npyHeader(shape, dtype);
  const out = new Uint8Array(10 + header.length + data.length);
  out.set(MAGIC);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let index = 0; index < header.length; index++) out[10 + index] = header.charCodeAt(index);
  out.set(data, 10 + header.length);
  return out;
}

/** The version 1.0 header text (ASCII), padded so that data starts on a 64-byte boundary. */
function npyHeader(shape: readonly number[], dtype: NpyWriteDtype): string {
  // Python's repr of a tuple: `(3,)` for one axis, `(3, 4)` otherwise.
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  if (shape.length > 0) header += ' '.repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length));
  // NumPy pads by ARRAY_ALIGN − (length mod ARRAY_ALIGN): a full 64 spaces when already aligned.
  const withNewline = header.length + 1;
  const padding = ARRAY_ALIGN - ((MAGIC.length + 4 + withNewline) % ARRAY_ALIGN);
  return `${header}${' '.repeat(padding)}\n`;
}
