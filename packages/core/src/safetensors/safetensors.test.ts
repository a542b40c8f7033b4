import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MoerlError } from '../errors/moerl-error.js';
import { DTYPE_BYTES, DTYPES, type DType } from '../tensors/dtype.js';
import { elementCount, type HostTensor, type NamedTensors } from '../tensors/tensor.js';
import { MAX_SAFETENSORS_HEADER_BYTES, parseSafetensors, readSafetensorsFile } from './read-safetensors.js';
import { serializeSafetensors, writeSafetensorsFile } from './write-safetensors.js';

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

function hex(text: string): Uint8Array {
  const digits = text.replace(/\s+|#[^\n]*/g, '');
  return Uint8Array.from(digits.match(/../g) ?? [], (pair) => Number.parseInt(pair, 16));
}

function rawBytes(tensor: HostTensor): Uint8Array {
  return new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
}

function tensorFromBytes(dtype: DType, shape: number[], bytes: Uint8Array): HostTensor {
  const buffer = bytes.slice().buffer; // fresh, offset 0, so every typed view is aligned
  switch (dtype) {
    case 'F32':
      return { dtype, shape, data: new Float32Array(buffer) };
    case 'F16':
    case 'BF16':
    case 'U16':
      return { dtype, shape, data: new Uint16Array(buffer) };
    case 'I64':
      return { dtype, shape, data: new BigInt64Array(buffer) };
    case 'I32':
      return { dtype, shape, data: new Int32Array(buffer) };
    case 'U8':
      return { dtype, shape, data: new Uint8Array(buffer) };
  }
}

/** Bit-exact comparison (NaN payloads included) of two tensor maps, order of names included. */
function expectSameTensors(actual: NamedTensors, expected: NamedTensors): void {
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [name, tensor] of expected) {
    const other = actual.get(name)!;
    expect(other.dtype).toBe(tensor.dtype);
    expect(other.shape).toEqual(tensor.shape);
    expect(other.data.constructor).toBe(tensor.data.constructor);
    expect(rawBytes(other)).toEqual(rawBytes(tensor));
  }
}

/** A file from a header (bytes as is, string UTF-8 encoded, else JSON) and a data buffer. */
function fileFrom(header: unknown, data: ArrayLike<number> = [], length?: bigint): Uint8Array {
  const json =
    header instanceof Uint8Array
      ? header
      : new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(Array.from(data), 8 + json.length);
  return out;
}

function headerLengthOf(file: Uint8Array): number {
  return Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
}

function headerOf(file: Uint8Array): Record<string, Record<string, unknown>> {
  return JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + headerLengthOf(file))));
}

function caught(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

/** Asserts CHECKPOINT_INVALID whose message contains every fragment (the source and tensor names, typically). */
function expectInvalid(bytes: Uint8Array, ...fragments: string[]): MoerlError {
  const error = caught(() => parseSafetensors(bytes, 'model.safetensors'));
  if (!MoerlError.isInstance(error, 'CHECKPOINT_INVALID')) throw error;
  expect(error.message).toContain('model.safetensors');
  for (const fragment of fragments) expect(error.message).toContain(fragment);
  return error;
}

/** 'ok' or 'invalid'; any other throw escapes and fails the property. */
function outcome(bytes: Uint8Array): 'ok' | 'invalid' {
  try {
    parseSafetensors(bytes);
    return 'ok';
  } catch (error) {
    if (MoerlError.isInstance(error, 'CHECKPOINT_INVALID')) return 'invalid';
    throw error;
  }
}

function sample(): NamedTensors {
  return new Map<string, HostTensor>([
    [
      'f32',
      { dtype: 'F32', shape: [2, 2], data: Float32Array.of(1, -2, Number.NaN, Number.NEGATIVE_INFINITY) },
    ],
    ['f16', { dtype: 'F16', shape: [3], data: Uint16Array.of(0x3c00, 0x7e01, 0x8000) }],
    ['bf16', { dtype: 'BF16', shape: [1, 1, 2], data: Uint16Array.of(0x3f80, 0xff80) }],
    ['i64', { dtype: 'I64', shape: [2], data: BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n) }],
    ['i32', { dtype: 'I32', shape: [2], data: Int32Array.of(-(2 ** 31), 2 ** 31 - 1) }],
    ['u16', { dtype: 'U16', shape: [1], data: Uint16Array.of(65535) }],
    ['u8', { dtype: 'U8', shape: [5], data: Uint8Array.of(0, 1, 127, 128, 255) }],
    ['scalar', { dtype: 'F32', shape: [], data: Float32Array.of(3.5) }],
    ['scalar-i64', { dtype: 'I64', shape: [], data: BigInt64Array.of(7n) }],
    ['empty', { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) }],
    ['empty-bf16', { dtype: 'BF16', shape: [4, 0], data: new Uint16Array(0) }],
    ['empty-u8', { dtype: 'U8', shape: [0], data: new Uint8Array(0) }],
  ]);
}

// ---------------------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------------------

const nameArbitrary = fc
  .string({ unit: 'binary', minLength: 1, maxLength: 6 })
  .filter((n) => n !== '__metadata__');

const tensorArbitrary: fc.Arbitrary<HostTensor> = fc
  .tuple(fc.constantFrom(...DTYPES), fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }))
  .chain(([dtype, shape]) => {
    const byteLength = elementCount(shape) * DTYPE_BYTES[dtype];
    return fc
      .uint8Array({ minLength: byteLength, maxLength: byteLength })
      .map((bytes) => tensorFromBytes(dtype, shape, bytes));
  });

const tensorsArbitrary: fc.Arbitrary<NamedTensors> = fc
  .uniqueArray(fc.tuple(nameArbitrary, tensorArbitrary), { selector: ([name]) => name, maxLength: 4 })
  .map((entries) => new Map(entries));

const metadataArbitrary = fc.option(fc.dictionary(fc.string({ unit: 'binary', maxLength: 5 }), fc.string()), {
  nil: undefined,
});

const fileArbitrary = fc
  .tuple(tensorsArbitrary, metadataArbitrary)
  .map(([tensors, metadata]) => ({ tensors, bytes: serializeSafetensors(tensors, metadata) }));

// ---------------------------------------------------------------------------------------------------------
// Writing and reading
// ---------------------------------------------------------------------------------------------------------

describe('serializeSafetensors / parseSafetensors', () => {
  it('round-trips every dtype, scalars and empty tensors bit-exactly', () => {
    const tensors = sample();
    const { tensors: back, metadata } = parseSafetensors(serializeSafetensors(tensors));
    expectSameTensors(back, tensors);
    expect(metadata).toEqual({});
  });

  it('round-trips random tensors and metadata', () => {
    fc.assert(
      fc.property(tensorsArbitrary, metadataArbitrary, (tensors, metadata) => {
        const back = parseSafetensors(serializeSafetensors(tensors, metadata));
        expectSameTensors(back.tensors, tensors);
        expect(back.metadata).toEqual(metadata ?? {});
      }),
      { numRuns: 300 },
    );
  });

  it('keeps metadata, including awkward keys', () => {
    const metadata = { format: 'pt', note: 'ünïcødé ✓', __proto__x: '1', '': 'empty key' };
    expect(parseSafetensors(serializeSafetensors(sample(), metadata)).metadata).toEqual(metadata);
    const proto = parseSafetensors(fileFrom('{"__metadata__":{"__proto__":"kept"}}')).metadata;
    expect(Object.hasOwn(proto, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
  });

  it('keeps insertion order, also for integer-like names', () => {
    const order = ['b', '1', 'a', '0', '__proto__'];
    const tensors: NamedTensors = new Map(
      order.map((name, index) => [name, { dtype: 'U8', shape: [1], data: Uint8Array.of(index) }]),
    );
    const bytes = serializeSafetensors(tensors);
    const back = parseSafetensors(bytes).tensors;
    expect([...back.keys()]).toEqual(order);
    expect([...bytes.subarray(bytes.length - 5)]).toEqual([0, 1, 2, 3, 4]); // laid out in insertion order
    expectSameTensors(back, tensors);
  });

  it('pads the header with spaces so the data starts at a multiple of 8', () => {
    for (let nameLength = 1; nameLength <= 16; nameLength++) {
      const tensors: NamedTensors = new Map([
        ['x'.repeat(nameLength), { dtype: 'U8', shape: [1], data: Uint8Array.of(9) }],
      ]);
      const bytes = serializeSafetensors(tensors);
      const length = headerLengthOf(bytes);
      expect((8 + length) % 8).toBe(0);
      const json = new TextDecoder().decode(bytes.subarray(8, 8 + length)).trimEnd();
      expect(JSON.parse(json)).toHaveProperty('x'.repeat(nameLength));
      expect(length - json.length).toBeLessThan(8);
      expect([...bytes.subarray(8 + json.length, 8 + length)].every((byte) => byte === 0x20)).toBe(true);
      expect(bytes.length).toBe(8 + length + 1);
    }
  });

  it('reads a file written by hand to the spec, and writes the same bytes', () => {
    const file = hex(`
      70 00 00 00 00 00 00 00                          # header length 112, u64 little-endian
      7b 22 61 22 3a 7b 22 64 74 79 70 65 22 3a 22 46  # {"a":{"dtype":"F
      33 32 22 2c 22 73 68 61 70 65 22 3a 5b 32 5d 2c  # 32","shape":[2],
      22 64 61 74 61 5f 6f 66 66 73 65 74 73 22 3a 5b  # "data_offsets":[
      30 2c 38 5d 7d 2c 22 62 22 3a 7b 22 64 74 79 70  # 0,8]},"b":{"dtyp
      65 22 3a 22 55 38 22 2c 22 73 68 61 70 65 22 3a  # e":"U8","shape":
      5b 33 5d 2c 22 64 61 74 61 5f 6f 66 66 73 65 74  # [3],"data_offset
      73 22 3a 5b 38 2c 31 31 5d 7d 7d 20 20 20 20 20  # s":[8,11]}}      (5 spaces: 8 + 112 = 120)
      00 00 80 3f 00 00 00 c0                          # a: f32 1.0, -2.0 little-endian
      01 02 03                                         # b: u8 1, 2, 3
    `);
    const { tensors, metadata } = parseSafetensors(file);
    expect(metadata).toEqual({});
    expect([...tensors.keys()]).toEqual(['a', 'b']);
    expect(tensors.get('a')).toEqual({ dtype: 'F32', shape: [2], data: Float32Array.of(1, -2) });
    expect(tensors.get('b')).toEqual({ dtype: 'U8', shape: [3], data: Uint8Array.of(1, 2, 3) });
    expect(serializeSafetensors(tensors)).toEqual(file);

    // Padding is optional in the spec: the same file without it reads the same.
    const unpadded = new Uint8Array([...file.subarray(0, 8 + 107), ...file.subarray(8 + 112)]);
    unpadded[0] = 107;
    expectSameTensors(parseSafetensors(unpadded).tensors, tensors);
  });

  it('copies tensors out of an unaligned source into aligned arrays', () => {
    const file = serializeSafetensors(sample());
    const shifted = new Uint8Array(file.length + 3);
    shifted.set(file, 3);
    const back = parseSafetensors(shifted.subarray(3)).tensors;
    expectSameTensors(back, sample());
    for (const tensor of back.values()) expect(tensor.data.buffer).not.toBe(shifted.buffer);
  });

  it('accepts an empty header', () => {
    expect(parseSafetensors(fileFrom('{}')).tensors.size).toBe(0);
    expect(parseSafetensors(serializeSafetensors(new Map())).tensors.size).toBe(0);
  });

  it('rejects invalid tensors with INVALID_ARGUMENT', () => {
    const cases: Array<[string, NamedTensors, Record<string, string>?]> = [
      ['length', new Map([['w', { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) }]])],
      ['empty name', new Map([['', { dtype: 'F32', shape: [1], data: new Float32Array(1) }]])],
      ['reserved name', new Map([['__metadata__', { dtype: 'F32', shape: [1], data: new Float32Array(1) }]])],
      [
        'storage',
        new Map([['w', { dtype: 'F16', shape: [2], data: new Float32Array(2) } as unknown as HostTensor]]),
      ],
      ['shape', new Map([['w', { dtype: 'U8', shape: [-1], data: new Uint8Array(0) }]])],
      [
        'dtype',
        new Map([['w', { dtype: 'F64', shape: [1], data: new Float32Array(1) } as unknown as HostTensor]]),
      ],
      ['metadata', new Map(), { k: 1 } as unknown as Record<string, string>],
    ];
    for (const [label, tensors, metadata] of cases) {
      const error = caught(() => serializeSafetensors(tensors, metadata));
      expect(MoerlError.isInstance(error, 'INVALID_ARGUMENT'), label).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------------------

describe('writeSafetensorsFile / readSafetensorsFile', () => {
  let directory = '';
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'moerl-safetensors-'));
  });
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('round-trips through a file and leaves only the target in the directory', async () => {
    const path = join(directory, 'model.safetensors');
    await writeSafetensorsFile(path, sample(), { format: 'pt' });
    const { tensors, metadata } = await readSafetensorsFile(path);
    expectSameTensors(tensors, sample());
    expect(metadata).toEqual({ format: 'pt' });
    expect(await readdir(directory)).toEqual(['model.safetensors']);
    expect(new Uint8Array(await readFile(path))).toEqual(serializeSafetensors(sample(), { format: 'pt' }));
  });

  it('replaces a file atomically: readers see the old or the complete new file, never a mix', async () => {
    const path = join(directory, 'model.safetensors');
    const oldTensors: NamedTensors = new Map([
      ['w', { dtype: 'U8', shape: [4], data: Uint8Array.of(1, 2, 3, 4) }],
    ]);
    const big = new Float32Array(2 ** 21).map((_, index) => index);
    const newTensors: NamedTensors = new Map([['w', { dtype: 'F32', shape: [big.length], data: big }]]);
    await writeSafetensorsFile(path, oldTensors);
    const oldBytes = await readFile(path);
    const newBytes = Buffer.from(serializeSafetensors(newTensors));

    let finished = false;
    const writing = writeSafetensorsFile(path, newTensors).finally(() => {
      finished = true;
    });
    const seen = new Set<string>();
    while (!finished) {
      const current = await readFile(path);
      const which = current.equals(oldBytes) ? 'old' : current.equals(newBytes) ? 'new' : 'torn';
      seen.add(which);
      expect(which).not.toBe('torn');
    }
    await writing;
    expect((await readFile(path)).equals(newBytes)).toBe(true);
    expect(await readdir(directory)).toEqual(['model.safetensors']);
    expect(seen.has('torn')).toBe(false);
  });

  it('fails in a missing directory with IO_ERROR and leaves nothing behind', async () => {
    const path = join(directory, 'missing', 'model.safetensors');
    const error = await writeSafetensorsFile(path, sample()).catch((e: unknown) => e);
    expect(MoerlError.isInstance(error, 'IO_ERROR')).toBe(true);
    expect(await readdir(directory)).toEqual([]);
  });

  it('keeps the old file when the input is invalid', async () => {
    const path = join(directory, 'model.safetensors');
    await writeSafetensorsFile(path, sample());
    const before = await readFile(path);
    const bad: NamedTensors = new Map([['w', { dtype: 'F32', shape: [2], data: new Float32Array(1) }]]);
    const error = await writeSafetensorsFile(path, bad).catch((e: unknown) => e);
    expect(MoerlError.isInstance(error, 'INVALID_ARGUMENT')).toBe(true);
    expect((await readFile(path)).equals(before)).toBe(true);
    expect(await readdir(directory)).toEqual(['model.safetensors']);
  });

  it('reports a missing file as IO_ERROR and a corrupt file as CHECKPOINT_INVALID naming the path', async () => {
    const missing = await readSafetensorsFile(join(directory, 'nope.safetensors')).catch((e: unknown) => e);
    expect(MoerlError.isInstance(missing, 'IO_ERROR')).toBe(true);

    const path = join(directory, 'bad.safetensors');
    const file = serializeSafetensors(sample());
    await writeFile(path, file.subarray(0, file.length - 1));
    const corrupt = await readSafetensorsFile(path).catch((e: unknown) => e);
    expect(MoerlError.isInstance(corrupt, 'CHECKPOINT_INVALID')).toBe(true);
    expect((corrupt as MoerlError).message).toContain(path);
    expect((corrupt as MoerlError).message).toContain('"scalar-i64"'); // the last tensor with bytes

    for (const bytes of [new Uint8Array(3), fileFrom('{}', [], 10n ** 9n), fileFrom('[]')]) {
      await writeFile(path, bytes);
      const error = await readSafetensorsFile(path).catch((e: unknown) => e);
      expect(MoerlError.isInstance(error, 'CHECKPOINT_INVALID')).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// Validation, case by case
// ---------------------------------------------------------------------------------------------------------

describe('parseSafetensors rejects', () => {
  const entry = (dtype: unknown, shape: unknown, offsets: unknown) => ({
    dtype,
    shape,
    data_offsets: offsets,
  });

  it('a file shorter than 8 bytes', () => {
    for (let length = 0; length < 8; length++)
      expectInvalid(new Uint8Array(length), `${length} bytes`, 'shorter');
  });

  it('a header length beyond the file', () => {
    expectInvalid(fileFrom('{}', [], 3n), 'header length 3', 'past the end');
  });

  it('a header length above 100 MB, without allocating it', () => {
    expectInvalid(fileFrom('{}', [], 2n ** 64n - 1n), String(MAX_SAFETENSORS_HEADER_BYTES));
    expectInvalid(fileFrom('{}', [], BigInt(MAX_SAFETENSORS_HEADER_BYTES + 1)), 'exceeds');
  });

  it('a header that is not UTF-8', () => {
    expectInvalid(fileFrom(Uint8Array.of(0x7b, 0x22, 0xff, 0x22, 0x7d)), 'UTF-8');
    expectInvalid(fileFrom(Uint8Array.of(0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d)), 'UTF-8'); // encoded surrogate
    const file = fileFrom('{"a":1}');
    file[10] = 0xc3; // starts a two-byte sequence, continued by '"'
    expectInvalid(file, 'UTF-8');
  });

  it('a header that is not JSON, or not an object', () => {
    expectInvalid(fileFrom('{"a":'), 'not valid JSON');
    expectInvalid(fileFrom(''), 'not valid JSON');
    expectInvalid(fileFrom('\ufeff{}'), 'not valid JSON'); // a BOM is not JSON whitespace
    expectInvalid(fileFrom('[]'), 'must be a JSON object', 'an array');
    expectInvalid(fileFrom('null'), 'must be a JSON object', 'null');
    expectInvalid(fileFrom('"x"'), 'must be a JSON object');
    expectInvalid(fileFrom('5'), 'must be a JSON object');
  });

  it('a header entry that is not an object', () => {
    expectInvalid(fileFrom({ w: 5 }), 'tensor "w"', 'must be an object', '5');
    expectInvalid(fileFrom({ w: [] }), 'tensor "w"', 'must be an object');
    expectInvalid(fileFrom({ w: null }), 'tensor "w"', 'must be an object');
  });

  it('an unknown or missing dtype, listing the valid ones', () => {
    const error = expectInvalid(
      fileFrom({ w: entry('F64', [1], [0, 8]) }, new Uint8Array(8)),
      'tensor "w"',
      '"F64"',
    );
    expect(error.message).toContain(DTYPES.join(', '));
    expectInvalid(fileFrom({ w: entry('f32', [1], [0, 4]) }, new Uint8Array(4)), 'tensor "w"', 'dtype');
    expectInvalid(
      fileFrom({ w: { shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      'tensor "w"',
      'dtype',
    );
  });

  it('a shape that is not an array of non-negative safe integers', () => {
    for (const shape of [5, '2', [-1], [1.5], ['2'], [null], [2 ** 53], [1e300], undefined]) {
      expectInvalid(fileFrom({ w: entry('U8', shape, [0, 0]) }), 'tensor "w"', 'shape');
    }
  });

  it('data_offsets that are not two non-negative integers with begin <= end', () => {
    for (const offsets of [
      [0],
      [0, 1, 2],
      [-1, 1],
      [1, 0],
      ['0', '1'],
      [0.5, 1],
      [0, 2 ** 53],
      {},
      undefined,
    ]) {
      expectInvalid(fileFrom({ w: entry('U8', [1], offsets) }, [7]), 'tensor "w"', 'data_offsets');
    }
  });

  it('data_offsets ending beyond the data buffer', () => {
    expectInvalid(
      fileFrom({ w: entry('F32', [2], [0, 8]) }, new Uint8Array(6)),
      'tensor "w"',
      'end 8',
      '6-byte',
    );
  });

  it('a byte span that does not match shape × dtype size', () => {
    expectInvalid(
      fileFrom({ w: entry('F32', [3], [0, 8]) }, new Uint8Array(8)),
      'tensor "w"',
      '12 bytes',
      'span 8',
    );
    expectInvalid(fileFrom({ w: entry('U8', [0], [0, 1]) }, [1]), 'tensor "w"', '0 bytes');
    expectInvalid(fileFrom({ w: entry('U8', [2 ** 40, 2 ** 40], [0, 1]) }, [1]), 'tensor "w"');
  });

  it('overlapping ranges, naming both tensors', () => {
    const header = { a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [4, 12]) };
    expectInvalid(fileFrom(header, new Uint8Array(12)), 'tensor "b"', 'overlap', 'tensor "a"');
    // An empty tensor must sit on a boundary too, not inside another tensor.
    const inside = { a: entry('F32', [2], [0, 8]), e: entry('F32', [0], [4, 4]) };
    expectInvalid(fileFrom(inside, new Uint8Array(8)), 'tensor "e"', 'overlap', 'tensor "a"');
    const same = { a: entry('U8', [4], [0, 4]), b: entry('U8', [4], [0, 4]) };
    expectInvalid(fileFrom(same, new Uint8Array(4)), 'tensor "b"', 'overlap', 'tensor "a"');
  });

  it('gaps between ranges', () => {
    const header = { a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [8, 12]) };
    expectInvalid(fileFrom(header, new Uint8Array(12)), 'tensor "b"', 'unused', '[4, 8)');
    expectInvalid(fileFrom({ b: entry('U8', [1], [1, 2]) }, [0, 0]), 'tensor "b"', 'unused');
  });

  it('trailing unused bytes', () => {
    expectInvalid(fileFrom({ a: entry('F32', [1], [0, 4]) }, new Uint8Array(5)), 'tensor "a"', '1 trailing');
    expectInvalid(fileFrom({}, [0]), '1 trailing', 'no tensors');
    expectInvalid(fileFrom({ a: entry('U8', [0], [0, 0]) }, [0]), 'tensor "a"', 'trailing');
  });

  it('duplicate names, which JSON.parse alone would hide', () => {
    const one = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}';
    expectInvalid(fileFrom(`{"a":${one},"a":${one}}`, [1]), 'tensor "a"', 'more than once');
    expectInvalid(fileFrom(`{"a":${one},"\\u0061":${one}}`, [1]), 'tensor "a"', 'more than once');
    expectInvalid(fileFrom(`{"__metadata__":{},"x":${one},"__metadata__":{}}`, [1]), '"__metadata__"');
    expectInvalid(
      fileFrom('{"a":{"dtype":"U8","dtype":"F32","shape":[1],"data_offsets":[0,1]}}', [1]),
      'tensor "a"',
      'key "dtype"',
    );
    expectInvalid(fileFrom('{"__metadata__":{"k":"1","k":"2"}}'), '"__metadata__"', 'key "k"');
    // Same key in different objects, and a key-like string in a value, are fine.
    const fine =
      '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    expect(parseSafetensors(fileFrom(fine, [1, 2])).tensors.size).toBe(2);
    expect(parseSafetensors(fileFrom('{"__metadata__":{"k":"k","x":"\\"k\\":"}}')).metadata).toEqual({
      k: 'k',
      x: '"k":',
    });
  });

  it('__metadata__ that is not a map of strings', () => {
    expectInvalid(fileFrom({ __metadata__: { k: 1 } }), '__metadata__', 'key "k"', 'string');
    expectInvalid(fileFrom({ __metadata__: { k: null } }), '__metadata__', 'string');
    expectInvalid(fileFrom({ __metadata__: ['x'] }), '__metadata__');
    expectInvalid(fileFrom({ __metadata__: 'x' }), '__metadata__');
    expectInvalid(fileFrom({ __metadata__: null }), '__metadata__');
  });

  it('a deeply nested header without overflowing the stack', () => {
    const depth = 200_000;
    expectInvalid(fileFrom(`{"a":${'['.repeat(depth)}${']'.repeat(depth)}}`), 'tensor "a"');
  });
});

// ---------------------------------------------------------------------------------------------------------
// Properties: arbitrary and corrupted input only ever gives CHECKPOINT_INVALID
// ---------------------------------------------------------------------------------------------------------

describe('parseSafetensors on hostile input', () => {
  it('random bytes either parse or throw CHECKPOINT_INVALID', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 128 }), (bytes) => {
        outcome(bytes);
      }),
      { numRuns: 1000 },
    );
  });

  it('a correct length prefix followed by random header bytes and data', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 32 }), (header, data) => {
        outcome(fileFrom(header, data));
        outcome(fileFrom(`{${new TextDecoder().decode(header)}}`, data));
      }),
      { numRuns: 1000 },
    );
  });

  it('random JSON headers, with plausible and implausible entries', () => {
    const field = <T>(plausible: fc.Arbitrary<T>) => fc.oneof(plausible, fc.jsonValue({ maxDepth: 2 }));
    const entryArbitrary = fc.record(
      {
        dtype: field(fc.constantFrom(...DTYPES, 'F64', '')),
        shape: field(fc.array(fc.integer({ min: -1, max: 4 }), { maxLength: 3 })),
        data_offsets: field(fc.tuple(fc.integer({ min: -1, max: 40 }), fc.integer({ min: -1, max: 40 }))),
      },
      { requiredKeys: [] },
    );
    const headerArbitrary = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.dictionary(fc.oneof(fc.string({ maxLength: 3 }), fc.constant('__metadata__')), entryArbitrary, {
        maxKeys: 4,
      }),
    );
    fc.assert(
      fc.property(headerArbitrary, fc.uint8Array({ maxLength: 40 }), (header, data) => {
        outcome(fileFrom(header, data));
      }),
      { numRuns: 1000 },
    );
  });

  it('any truncation of a valid file is rejected', () => {
    fc.assert(
      fc.property(fileArbitrary, fc.nat(), ({ bytes }, cut) => {
        expect(outcome(bytes.subarray(0, cut % bytes.length))).toBe('invalid');
      }),
      { numRuns: 500 },
    );
  });

  it('any other header length is rejected', () => {
    fc.assert(
      fc.property(
        fileArbitrary,
        fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.integer({ min: -24, max: 24 }).map(BigInt)),
        ({ bytes }, value) => {
          const actual = BigInt(headerLengthOf(bytes));
          // Small values are taken as offsets from the true length, to probe lengths that are nearly right.
          const length = value <= 24n ? actual + value : value;
          fc.pre(length !== actual && length >= 0n && length < 2n ** 64n);
          const corrupt = bytes.slice();
          new DataView(corrupt.buffer).setBigUint64(0, length, true);
          expect(outcome(corrupt)).toBe('invalid');
        },
      ),
      { numRuns: 500 },
    );
  });

  it('one changed header byte gives CHECKPOINT_INVALID or a file with the same data', () => {
    fc.assert(
      fc.property(
        fileArbitrary,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        ({ tensors, bytes }, at, delta) => {
          const corrupt = bytes.slice();
          const index = 8 + (at % headerLengthOf(bytes));
          corrupt[index] = (corrupt[index]! + delta) % 256;
          if (outcome(corrupt) === 'invalid') return;
          // Still valid: a name, metadata text, whitespace, or a same-width dtype may have changed, but each
          // tensor, in order, must still own exactly its original bytes.
          const back = [...parseSafetensors(corrupt).tensors.values()];
          const original = [...tensors.values()];
          expect(back.length).toBe(original.length);
          back.forEach((tensor, position) => {
            expect(rawBytes(tensor)).toEqual(rawBytes(original[position]!));
          });
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('several changed header bytes give CHECKPOINT_INVALID or a valid parse, never another error', () => {
    fc.assert(
      fc.property(
        fileArbitrary,
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 2, maxLength: 8 }),
        ({ bytes }, edits) => {
          const corrupt = bytes.slice();
          for (const [at, value] of edits) corrupt[8 + (at % headerLengthOf(bytes))] = value;
          outcome(corrupt);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('a wrong dtype, shape or data_offsets on a non-empty tensor is rejected, naming the tensor', () => {
    const nonEmpty = fileArbitrary.filter(({ tensors }) =>
      [...tensors.values()].some((t) => t.data.length > 0),
    );
    const edit = fc.oneof(
      fc.record({
        field: fc.constant('dtype' as const),
        value: fc.oneof(fc.constantFrom(...DTYPES), fc.jsonValue()),
      }),
      fc.record({
        field: fc.constant('shape' as const),
        value: fc.oneof(fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 3 }), fc.jsonValue()),
      }),
      fc.record({
        field: fc.constant('data_offsets' as const),
        value: fc.oneof(fc.tuple(fc.nat({ max: 120 }), fc.nat({ max: 120 })), fc.jsonValue()),
      }),
    );
    fc.assert(
      fc.property(nonEmpty, fc.nat(), edit, ({ tensors, bytes }, pick, { field, value }) => {
        const candidates = [...tensors].filter(([, tensor]) => tensor.data.length > 0);
        const [name, tensor] = candidates[pick % candidates.length]!;
        const header = headerOf(bytes);
        const original = header[name]!;
        // Only edits that make the entry inconsistent: same-width dtypes and reshapes are legitimately valid.
        if (field === 'dtype') {
          fc.pre(
            !(
              typeof value === 'string' &&
              DTYPES.includes(value as DType) &&
              DTYPE_BYTES[value as DType] === DTYPE_BYTES[tensor.dtype]
            ),
          );
        } else if (field === 'shape') {
          fc.pre(
            !(
              Array.isArray(value) &&
              value.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0) &&
              elementCount(value as number[]) === tensor.data.length
            ),
          );
        } else {
          fc.pre(JSON.stringify(value) !== JSON.stringify(original.data_offsets));
        }
        header[name] = { ...original, [field]: value };
        const data = bytes.subarray(8 + headerLengthOf(bytes));
        const error = caught(() => parseSafetensors(fileFrom(header, data), 'model.safetensors'));
        expect(MoerlError.isInstance(error, 'CHECKPOINT_INVALID')).toBe(true);
        expect((error as MoerlError).message).toContain('model.safetensors');
        // A moved range may first show up as a gap or overlap at a neighbour; other edits fail on the entry.
        if (field !== 'data_offsets') expect((error as MoerlError).message).toContain(JSON.stringify(name));
      }),
      { numRuns: 1000 },
    );
  });
});
