import { MoerlError } from '../errors/moerl-error.js';
import { writeFileAtomic } from '../io/write-file-atomic.js';
import { DTYPE_BYTES, DTYPES, type DType, isDType } from '../tensors/dtype.js';
import { elementCount, type HostTensor, type NamedTensors } from '../tensors/tensor.js';

const METADATA_KEY = '__metadata__';
// Typed arrays hold host-order values and safetensors is little-endian, so bytes are copied verbatim.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

// Compared through Symbol.toStringTag rather than instanceof, so typed arrays from another realm pass too.
const STORAGE: Readonly<Record<DType, string>> = {
  F32: 'Float32Array',
  F16: 'Uint16Array',
  BF16: 'Uint16Array',
  I64: 'BigInt64Array',
  I32: 'Int32Array',
  U16: 'Uint16Array',
  U8: 'Uint8Array',
};

function invalidArgument(message: string, details: Record<string, unknown> = {}): MoerlError {
  return new MoerlError('INVALID_ARGUMENT', `serializeSafetensors: ${message}`, { details });
}

function checkTensor(name: string, tensor: HostTensor): void {
  if (typeof name !== 'string') throw invalidArgument(`tensor names must be strings, found ${typeof name}`);
  const label = `tensor ${JSON.stringify(name)}`;
  if (name.length === 0) throw invalidArgument('tensor names must be non-empty');
  if (name === METADATA_KEY) throw invalidArgument(`${label} is reserved for metadata`, { tensor: name });
  if (!isDType(tensor.dtype)) {
    throw invalidArgument(
      `${label}: dtype must be one of ${DTYPES.join(', ')}, found ${String(tensor.dtype)}`,
      {
        tensor: name,
      },
    );
  }
  const { shape } = tensor;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw invalidArgument(
      `${label}: shape must be an array of non-negative integers, found ${String(shape)}`,
      {
        tensor: name,
      },
    );
  }
  const storage = STORAGE[tensor.dtype];
  const found: unknown = ArrayBuffer.isView(tensor.data)
    ? Object.prototype.toString.call(tensor.data)
    : undefined;
  if (found !== `[object ${storage}]`) {
    throw invalidArgument(`${label}: ${tensor.dtype} data must be a ${storage}, found ${String(found)}`, {
      tensor: name,
    });
  }
  const expected = elementCount(shape);
  if (tensor.data.length !== expected) {
    throw invalidArgument(
      `${label}: shape [${shape.join(', ')}] needs ${expected} elements, found ${tensor.data.length}`,
      { tensor: name, expected, found: tensor.data.length },
    );
  }
}

function checkMetadata(metadata: Record<string, string>): void {
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw invalidArgument('metadata must be an object of strings');
  }
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') {
      throw invalidArgument(
        `metadata value for key ${JSON.stringify(key)} must be a string, found ${typeof value}`,
        {
          key,
        },
      );
    }
  }
}

/**
 * Encodes tensors as a safetensors file: u64 LE header length, JSON header, then the tensors' bytes back to
 * back in insertion order. The header is padded with spaces so the data buffer starts 8-byte aligned, which
 * lets readers map tensors in place. `metadata` becomes `__metadata__` (omitted when not given).
 */
export function serializeSafetensors(tensors: NamedTensors, metadata?: Record<string, string>): Uint8Array {
  if (!HOST_IS_LITTLE_ENDIAN) {
    throw new MoerlError(
      'UNSUPPORTED',
      'serializeSafetensors: writing safetensors needs a little-endian host',
    );
  }
  if (metadata !== undefined) checkMetadata(metadata);
  // The header is assembled entry by entry: JSON.stringify of one object would move integer-like names
  // ("0", "1") to the front, while readers should see the layout order.
  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const [name, tensor] of tensors) {
    checkTensor(name, tensor);
    const end = offset + tensor.data.length * DTYPE_BYTES[tensor.dtype];
    const entry = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, end] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(entry)}`);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLength = json.length + ((8 - (json.length % 8)) % 8);
  const dataStart = 8 + headerLength;
  const out = new Uint8Array(dataStart + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, dataStart);
  let cursor = dataStart;
  for (const tensor of tensors.values()) {
    out.set(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength), cursor);
    cursor += tensor.data.byteLength;
  }
  return out;
}

/**
 * Serializes and writes atomically (temp file, fsync, rename): readers of `path` see the old file or the
 * complete new one, never a partial checkpoint. Invalid input throws before the file system is touched.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: NamedTensors,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}
