import { type FileHandle, open } from 'node:fs/promises';
import { MoerlError } from '../errors/moerl-error.js';
import { DTYPE_BYTES, DTYPES, type DType, isDType } from '../tensors/dtype.js';
import type { HostTensor, NamedTensors } from '../tensors/tensor.js';

/** A parsed checkpoint: tensors in header order, and the `__metadata__` string map ({} when absent). */
export interface SafetensorsContents {
  readonly tensors: NamedTensors;
  readonly metadata: Record<string, string>;
}

/**
 * Headers above this size are rejected before anything is allocated, so a corrupt length field cannot make
 * us reserve gigabytes. Same bound as the reference Rust implementation (100 MB).
 */
export const MAX_SAFETENSORS_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';
const DEFAULT_SOURCE = 'safetensors data';
// Safetensors stores little-endian values and typed arrays use host order, so tensor bytes are copied verbatim.
// Every platform Node supports in practice is little-endian; a big-endian host is refused instead of misread.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
// Large tensors are read from files in slices, since one fs read is limited to 2 GiB.
const READ_CHUNK_BYTES = 1 << 30;

interface TensorEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

interface ParsedHeader {
  readonly entries: TensorEntry[];
  readonly metadata: Record<string, string>;
}

/** Keeps messages readable when a corrupt file holds a megabyte-long name or value. */
function clip(text: string, limit = 120): string {
  return text.length <= limit ? text : `${text.slice(0, limit)}…(${text.length} chars)`;
}

/**
 * A short rendering of a header value for messages. Bounded in depth and width, since JSON.stringify on a
 * hostile value could recurse past the stack limit or print megabytes.
 */
function show(value: unknown, depth = 0): string {
  if (value === undefined) return 'nothing';
  if (typeof value !== 'object' || value === null) return clip(JSON.stringify(value));
  if (Array.isArray(value)) {
    if (depth >= 2) return '[…]';
    const items = value.slice(0, 8).map((item: unknown) => show(item, depth + 1));
    return clip(`[${items.join(', ')}${value.length > 8 ? ', …' : ''}]`);
  }
  if (depth >= 2) return '{…}';
  const keys = Object.keys(value);
  const items = keys
    .slice(0, 4)
    .map(
      (key) =>
        `${clip(JSON.stringify(key), 40)}: ${show((value as Record<string, unknown>)[key], depth + 1)}`,
    );
  return clip(`{${items.join(', ')}${keys.length > 4 ? ', …' : ''}}`);
}

function invalid(source: string, message: string, details: Record<string, unknown> = {}): MoerlError {
  return new MoerlError('CHECKPOINT_INVALID', `${source}: ${message}`, { details: { source, ...details } });
}

function tensorLabel(name: string): string {
  return `tensor ${clip(JSON.stringify(name))}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonNegativeSafeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

interface ScanFrame {
  /** Keys seen so far; undefined for arrays. */
  readonly keys: Set<string> | undefined;
  expectKey: boolean;
}

/**
 * The top-level keys of `text` (already accepted by JSON.parse) in file order, rejecting any object, at any
 * depth, that repeats a key: JSON.parse silently keeps the last duplicate, which would hide a tensor. The
 * walk is iterative so deeply nested input cannot overflow the stack.
 */
function scanKeys(text: string, source: string): string[] {
  const stack: ScanFrame[] = [];
  const topKeys: string[] = [];
  let owner: string | undefined; // the top-level key whose value is being walked
  let index = 0;
  while (index < text.length) {
    const code = text.charCodeAt(index);
    if (code === 0x22) {
      let end = index + 1;
      while (end < text.length && text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c ? 2 : 1;
      const frame = stack[stack.length - 1];
      if (frame?.keys !== undefined && frame.expectKey) {
        const key = JSON.parse(text.slice(index, end + 1)) as string;
        if (frame.keys.has(key)) {
          if (stack.length === 1) {
            throw invalid(source, `${tensorLabel(key)} appears more than once in the header`, {
              tensor: key,
            });
          }
          const label = `${tensorLabel(owner ?? '')}: key ${clip(JSON.stringify(key))}`;
          throw invalid(source, `${label} appears more than once in its entry`, { tensor: owner, key });
        }
        frame.keys.add(key);
        frame.expectKey = false;
        if (stack.length === 1) {
          topKeys.push(key);
          owner = key;
        }
      }
      index = end + 1;
      continue;
    }
    if (code === 0x7b) stack.push({ keys: new Set(), expectKey: true });
    else if (code === 0x5b) stack.push({ keys: undefined, expectKey: false });
    else if (code === 0x7d || code === 0x5d) stack.pop();
    else if (code === 0x2c) {
      const frame = stack[stack.length - 1];
      if (frame?.keys !== undefined) frame.expectKey = true;
    }
    index += 1;
  }
  return topKeys;
}

function decodeHeaderJson(
  headerBytes: Uint8Array,
  source: string,
): { json: Record<string, unknown>; text: string } {
  let text: string;
  try {
    // fatal: reject invalid UTF-8 instead of inventing U+FFFD; ignoreBOM keeps a BOM so JSON.parse rejects it.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch (error) {
    throw invalid(source, 'header is not valid UTF-8', { cause: String(error) });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw invalid(source, `header is not valid JSON (${(error as Error).message})`);
  }
  if (!isPlainObject(json)) {
    throw invalid(
      source,
      `header must be a JSON object, found ${Array.isArray(json) ? 'an array' : show(json)}`,
    );
  }
  return { json, text };
}

function parseMetadata(value: unknown, source: string): Record<string, string> {
  if (!isPlainObject(value)) {
    throw invalid(source, `${METADATA_KEY} must be an object of strings, found ${show(value)}`, {
      tensor: METADATA_KEY,
    });
  }
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') {
      throw invalid(
        source,
        `${METADATA_KEY} value for key ${clip(JSON.stringify(key))} must be a string, found ${show(item)}`,
        { tensor: METADATA_KEY, key },
      );
    }
  }
  // Object.fromEntries defines keys as own data properties, so even a key named "__proto__" is kept as data.
  return Object.fromEntries(Object.entries(value as Record<string, string>));
}

function parseEntry(name: string, value: unknown, bufferBytes: number, source: string): TensorEntry {
  const label = tensorLabel(name);
  if (!isPlainObject(value)) {
    throw invalid(source, `${label}: header entry must be an object, found ${show(value)}`, { tensor: name });
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isDType(dtype)) {
    throw invalid(source, `${label}: dtype must be one of ${DTYPES.join(', ')}, found ${show(dtype)}`, {
      tensor: name,
      expected: DTYPES,
      found: dtype,
    });
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeSafeInteger)) {
    throw invalid(source, `${label}: shape must be an array of non-negative integers, found ${show(shape)}`, {
      tensor: name,
    });
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !isNonNegativeSafeInteger(offsets[0]) ||
    !isNonNegativeSafeInteger(offsets[1]) ||
    offsets[0] > offsets[1]
  ) {
    throw invalid(
      source,
      `${label}: data_offsets must be [begin, end] with non-negative integers begin <= end, found ${show(offsets)}`,
      { tensor: name },
    );
  }
  const [begin, end] = offsets as [number, number];
  if (end > bufferBytes) {
    throw invalid(
      source,
      `${label}: data_offsets end ${end} lies beyond the ${bufferBytes}-byte data buffer (file truncated?)`,
      { tensor: name, expected: bufferBytes, found: end },
    );
  }
  let elements = 1;
  for (const dimension of shape) elements *= dimension;
  const expectedBytes = elements * DTYPE_BYTES[dtype];
  if (expectedBytes !== end - begin) {
    throw invalid(
      source,
      `${label}: ${dtype} shape [${clip(shape.join(', '))}] needs ${expectedBytes} bytes, but data_offsets ` +
        `[${begin}, ${end}] span ${end - begin}`,
      { tensor: name, expected: expectedBytes, found: end - begin },
    );
  }
  return { name, dtype, shape, begin, end };
}

/** The spec requires the tensors to tile the data buffer exactly: no overlap, no gap, no trailing bytes. */
function checkCoverage(entries: readonly TensorEntry[], bufferBytes: number, source: string): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: TensorEntry | undefined;
  for (const entry of sorted) {
    if (entry.begin < cursor) {
      throw invalid(
        source,
        `${tensorLabel(entry.name)}: data_offsets [${entry.begin}, ${entry.end}] overlap ` +
          `${tensorLabel(previous?.name ?? '')}, which ends at ${cursor}`,
        { tensor: entry.name, other: previous?.name, expected: cursor, found: entry.begin },
      );
    }
    if (entry.begin > cursor) {
      throw invalid(
        source,
        `${tensorLabel(entry.name)}: data_offsets start at ${entry.begin}, leaving bytes [${cursor}, ${entry.begin}) ` +
          'of the data buffer unused; tensors must be contiguous',
        { tensor: entry.name, expected: cursor, found: entry.begin },
      );
    }
    cursor = entry.end;
    previous = entry;
  }
  if (cursor !== bufferBytes) {
    const last =
      previous === undefined
        ? 'the header lists no tensors'
        : `the last tensor, ${tensorLabel(previous.name)}, ends at ${cursor} of ${bufferBytes}`;
    throw invalid(source, `data buffer has ${bufferBytes - cursor} trailing unused bytes: ${last}`, {
      tensor: previous?.name,
      expected: cursor,
      found: bufferBytes,
    });
  }
}

/**
 * Validates the 8-byte length prefix against the file size. Returns the header length.
 * `prefix` must hold the first min(8, fileBytes) bytes.
 */
function headerLength(prefix: Uint8Array, fileBytes: number, source: string): number {
  if (!HOST_IS_LITTLE_ENDIAN) {
    throw new MoerlError('UNSUPPORTED', `${source}: reading safetensors needs a little-endian host`);
  }
  if (fileBytes < 8) {
    throw invalid(source, `file is ${fileBytes} bytes, shorter than the 8-byte header length field`, {
      expected: 8,
      found: fileBytes,
    });
  }
  const length = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(MAX_SAFETENSORS_HEADER_BYTES)) {
    throw invalid(source, `header length ${length} exceeds the ${MAX_SAFETENSORS_HEADER_BYTES}-byte limit`, {
      expected: MAX_SAFETENSORS_HEADER_BYTES,
      found: length.toString(),
    });
  }
  if (length > BigInt(fileBytes - 8)) {
    throw invalid(source, `header length ${length} runs past the end of the ${fileBytes}-byte file`, {
      expected: fileBytes - 8,
      found: Number(length),
    });
  }
  return Number(length);
}

function parseHeader(headerBytes: Uint8Array, bufferBytes: number, source: string): ParsedHeader {
  const { json, text } = decodeHeaderJson(headerBytes, source);
  // Key order comes from the text, not from `json`: objects list integer-like keys ("0", "1") first.
  const names = scanKeys(text, source);
  const metadata = Object.hasOwn(json, METADATA_KEY) ? parseMetadata(json[METADATA_KEY], source) : {};
  const entries = names
    .filter((name) => name !== METADATA_KEY)
    .map((name) => parseEntry(name, json[name], bufferBytes, source));
  checkCoverage(entries, bufferBytes, source);
  return { entries, metadata };
}

function allocate(entry: TensorEntry): { tensor: HostTensor; bytes: Uint8Array } {
  const { dtype, shape } = entry;
  const count = (entry.end - entry.begin) / DTYPE_BYTES[dtype];
  let tensor: HostTensor;
  switch (dtype) {
    case 'F32':
      tensor = { dtype, shape, data: new Float32Array(count) };
      break;
    case 'F16':
    case 'BF16':
    case 'U16':
      tensor = { dtype, shape, data: new Uint16Array(count) };
      break;
    case 'I64':
      tensor = { dtype, shape, data: new BigInt64Array(count) };
      break;
    case 'I32':
      tensor = { dtype, shape, data: new Int32Array(count) };
      break;
    case 'U8':
      tensor = { dtype, shape, data: new Uint8Array(count) };
      break;
  }
  // A fresh typed array is aligned for its element type, whatever the offset of the bytes in the file.
  return {
    tensor,
    bytes: new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength),
  };
}

/**
 * Parses a whole safetensors file held in memory. Every tensor gets its own aligned, copied typed array.
 * Throws `CHECKPOINT_INVALID` (naming `source` and the tensor) for any input that breaks the format.
 */
export function parseSafetensors(bytes: Uint8Array, source: string = DEFAULT_SOURCE): SafetensorsContents {
  const length = headerLength(bytes.subarray(0, 8), bytes.length, source);
  const dataStart = 8 + length;
  const { entries, metadata } = parseHeader(bytes.subarray(8, dataStart), bytes.length - dataStart, source);
  const tensors: NamedTensors = new Map();
  for (const entry of entries) {
    const { tensor, bytes: target } = allocate(entry);
    target.set(bytes.subarray(dataStart + entry.begin, dataStart + entry.end));
    tensors.set(entry.name, tensor);
  }
  return { tensors, metadata };
}

async function readExactly(
  handle: FileHandle,
  target: Uint8Array,
  position: number,
  path: string,
): Promise<void> {
  for (let done = 0; done < target.length; ) {
    const length = Math.min(READ_CHUNK_BYTES, target.length - done);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) {
      throw invalid(
        path,
        `file ended at byte ${position + done} while reading; was it truncated during the read?`,
      );
    }
    done += bytesRead;
  }
}

/**
 * Reads and validates a safetensors file. The header is checked against the file size before any tensor is
 * allocated, and tensor bytes are read straight into their typed arrays, so files beyond Node's 2 GiB
 * `readFile` limit work. Format errors throw `CHECKPOINT_INVALID`, file-system errors `IO_ERROR`.
 */
export async function readSafetensorsFile(path: string): Promise<SafetensorsContents> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw new MoerlError('IO_ERROR', `Could not open ${path}: ${(error as Error).message}`, {
      cause: error,
      details: { path },
    });
  }
  try {
    const { size } = await handle.stat();
    const prefix = new Uint8Array(Math.min(8, size));
    await readExactly(handle, prefix, 0, path);
    const length = headerLength(prefix, size, path);
    const headerBytes = new Uint8Array(length);
    await readExactly(handle, headerBytes, 8, path);
    const dataStart = 8 + length;
    const { entries, metadata } = parseHeader(headerBytes, size - dataStart, path);
    const tensors: NamedTensors = new Map();
    for (const entry of entries) {
      const { tensor, bytes } = allocate(entry);
      await readExactly(handle, bytes, dataStart + entry.begin, path);
      tensors.set(entry.name, tensor);
    }
    return { tensors, metadata };
  } catch (error) {
    if (MoerlError.isInstance(error)) throw error;
    throw new MoerlError('IO_ERROR', `Could not read ${path}: ${(error as Error).message}`, {
      cause: error,
      details: { path },
    });
  } finally {
    await handle.close();
  }
}
