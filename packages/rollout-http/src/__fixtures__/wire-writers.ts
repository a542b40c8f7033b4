// Independent writers for test fixtures: a hand-rolled base64 encoder (not Buffer) and a .npy writer that
// follows NumPy's format description, so the decoders are checked against bytes they did not produce.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function base64Of(bytes: Uint8Array): string {
  let out = '';
  for (let index = 0; index < bytes.length; index += 3) {
    const a = bytes[index]!;
    const b = bytes[index + 1];
    const c = bytes[index + 2];
    const triple = (a << 16) | ((b ?? 0) << 8) | (c ?? 0);
    out += ALPHABET[(triple >> 18) & 63]! + ALPHABET[(triple >> 12) & 63]!;
    out += b === undefined ? '=' : ALPHABET[(triple >> 6) & 63]!;
    out += c === undefined ? '=' : ALPHABET[triple & 63]!;
  }
  return out;
}

export type FixtureDtype = '|u1' | '<u2' | '>u2' | '<i2' | '>i2' | '<i4' | '>i4';

function itemBytes(dtype: FixtureDtype): number {
  return dtype === '|u1' ? 1 : dtype.endsWith('2') ? 2 : 4;
}

/** Integers as bytes of `dtype`, written byte by byte with shifts (two's complement for negatives). */
export function integerBytes(values: readonly number[], dtype: FixtureDtype): Uint8Array {
  const size = itemBytes(dtype);
  const bigEndian = dtype.startsWith('>');
  const out = new Uint8Array(values.length * size);
  values.forEach((value, index) => {
    const unsigned = value < 0 ? 2 ** (8 * size) + value : value;
    for (let byte = 0; byte < size; byte++) {
      const shift = bigEndian ? 8 * (size - 1 - byte) : 8 * byte;
      out[index * size + byte] = Math.floor(unsigned / 2 ** shift) % 256;
    }
  });
  return out;
}

export interface NpyFixtureOptions {
  readonly version?: 1 | 2 | 3;
  readonly fortranOrder?: boolean;
}

/**
 * A .npy file of `values` given in C order with `shape`; with `fortranOrder` the data is written
 * column-major and the header says so.
 */
export function npyOf(
  values: readonly number[],
  shape: readonly number[],
  dtype: FixtureDtype,
  options: NpyFixtureOptions = {},
): Uint8Array {
  const version = options.version ?? 1;
  const fortran = options.fortranOrder ?? false;
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${dtype}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const prefix = version === 1 ? 10 : 12;
  const padding = 64 - ((prefix + header.length + 1) % 64);
  header = `${header}${' '.repeat(padding % 64)}\n`;
  const data = integerBytes(fortran ? toFortran(values, shape) : values, dtype);
  const out = new Uint8Array(prefix + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  if (version === 1) {
    out[8] = header.length & 255;
    out[9] = header.length >> 8;
  } else {
    for (let byte = 0; byte < 4; byte++) out[8 + byte] = (header.length >>> (8 * byte)) & 255;
  }
  for (let index = 0; index < header.length; index++) out[prefix + index] = header.charCodeAt(index);
  out.set(data, prefix + header.length);
  return out;
}

/** Column-major order of a C-order array, by explicit index arithmetic. */
function toFortran(values: readonly number[], shape: readonly number[]): number[] {
  const out = new Array<number>(values.length);
  const strides = shape.map((_, axis) => shape.slice(axis + 1).reduce((a, b) => a * b, 1));
  for (let c = 0; c < values.length; c++) {
    let fortranOffset = 0;
    let fortranStride = 1;
    for (let axis = 0; axis < shape.length; axis++) {
      const index = Math.floor(c / strides[axis]!) % shape[axis]!;
      fortranOffset += index * fortranStride;
      fortranStride *= shape[axis]!;
    }
    out[fortranOffset] = values[c]!;
  }
  return out;
}

/**
 * Routing over MoE layers only, `[rows][moeLayers][topK]`, expanded to `[rows][numLayers][topK]` with
 * zeros on dense layers, as SGLang and current vLLM send it. Returns the flat hidden-layer array.
 */
export function expandToHiddenLayers(
  moeRows: readonly (readonly (readonly number[])[])[],
  moeLayers: readonly number[],
  numLayers: number,
  topK: number,
): number[] {
  const out: number[] = [];
  for (const row of moeRows) {
    for (let layer = 0; layer < numLayers; layer++) {
      const slot = moeLayers.indexOf(layer);
      out.push(...(slot === -1 ? new Array<number>(topK).fill(0) : row[slot]!));
    }
  }
  return out;
}
