// Reader and writer for the .safetensors format: an 8-byte little-endian u64 header length N, N bytes of UTF-8
// JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {key: value}}` (offsets relative to
// the data section at 8 + N), then the raw little-endian tensor bytes. The reader validates the header on
// open and reads tensor data lazily with positioned reads, so multi-gigabyte files are never loaded whole.
// This file is the format alone (no Node modules, so the browser bundle shares it): files are read through a
// FileLoader (loader.ts) or from bytes in memory; safetensors.ts adds the atomic writers on Node's fs.
import { resolveLoader } from './loader.js';
import type { FileLoader, RandomAccessFile } from './loader.js';
import { bf16ToF32, f16ToF32, f8E4M3ToF32, f8E5M2ToF32 } from './half.js';
import { KinemaError } from '../errors.js';

/** Bytes per element of each safetensors dtype (F8_E4M3 is the "fn" variant: no infinities). */
export const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
} as const satisfies Record<string, number>;

export type SafetensorsDType = keyof typeof DTYPE_BYTES;

export type SafetensorsErrorCode =
  | 'NOT_FOUND'
  | 'TRUNCATED'
  | 'HEADER_LENGTH_BEYOND_FILE'
  | 'BAD_HEADER'
  | 'UNKNOWN_DTYPE'
  | 'SHAPE_SIZE_MISMATCH'
  | 'OFFSETS_OUT_OF_RANGE'
  | 'OVERLAPPING_OFFSETS'
  | 'MISSING_TENSOR';

/** A safetensors file is missing or malformed; `code` is `SAFETENSORS_<reason>` (docs/errors.md). */
export class SafetensorsError extends KinemaError {
  /** The short reason (`BAD_HEADER`, …); `code` is the catalogue's `SAFETENSORS_BAD_HEADER`. */
  readonly reason: SafetensorsErrorCode;
  readonly path: string;
  constructor(reason: SafetensorsErrorCode, path: string, message: string) {
    super(`SAFETENSORS_${reason}`, `${path}: ${message}`);
    this.name = 'SafetensorsError';
    this.reason = reason;
    this.path = path;
  }
}

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute offset of the tensor's first byte in the file. */
  byteOffset: number;
  byteLength: number;
}

export type HostArray =
  | Float32Array
  | Float64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

export interface TensorToWrite {
  dtype: SafetensorsDType;
  shape: readonly number[];
  data: ArrayBufferView;
}

const METADATA_KEY = '__metadata__';
/** Same limit as the reference implementation: a header above 100 MB is treated as corrupt. */
const MAX_HEADER_BYTES = 100_000_000;
if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) {
  throw new KinemaError(
    'HOST_BIG_ENDIAN',
    'safetensors: big-endian hosts are not supported (tensor data is little-endian)',
  );
}

function err(code: SafetensorsErrorCode, path: string, message: string): SafetensorsError {
  return new SafetensorsError(code, path, message);
}

function isDType(s: string): s is SafetensorsDType {
  return Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function elementCount(shape: readonly number[]): bigint {
  let n = 1n;
  for (const d of shape) n *= BigInt(d);
  return n;
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Reads exactly `length` bytes at `position`; throws TRUNCATED on early EOF. */
function preadExact(
  file: RandomAccessFile,
  path: string,
  position: number,
  length: number,
  what: string,
): Uint8Array {
  const out = file.read(position, length);
  if (out.length < length) {
    const done = out.length;
    throw err(
      'TRUNCATED',
      path,
      `unexpected end of file reading ${what} (got ${done} of ${length} bytes at offset ${position})`,
    );
  }
  return out;
}

interface ParsedHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

function parseMetadata(path: string, value: unknown): Record<string, string> {
  if (!isPlainObject(value)) {
    throw err('BAD_HEADER', path, `"${METADATA_KEY}" must be an object of strings`);
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      throw err('BAD_HEADER', path, `"${METADATA_KEY}" value for "${k}" is not a string`);
    }
  }
  return Object.fromEntries(Object.entries(value)) as Record<string, string>;
}

function parseEntry(path: string, name: string, value: unknown, dataStart: number): TensorInfo {
  const bad = (what: string): SafetensorsError => err('BAD_HEADER', path, `tensor "${name}": ${what}`);
  if (!isPlainObject(value)) throw bad('entry is not an object');
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') throw bad('"dtype" is missing or not a string');
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad('"shape" must be an array of non-negative integers');
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => typeof o === 'number')) {
    throw bad('"data_offsets" must be an array [begin, end] of two integers');
  }
  const [begin, end] = offsets as [number, number];
  if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end < 0) {
    throw bad(`"data_offsets" [${begin}, ${end}] must be non-negative integers`);
  }
  if (!isDType(dtype)) {
    throw err('UNKNOWN_DTYPE', path, `tensor "${name}": unknown dtype "${dtype}"`);
  }
  if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || end < begin) {
    throw err('OFFSETS_OUT_OF_RANGE', path, `tensor "${name}": invalid data_offsets [${begin}, ${end}]`);
  }
  const expected = elementCount(shape as number[]) * BigInt(DTYPE_BYTES[dtype]);
  if (expected !== BigInt(end - begin)) {
    throw err(
      'SHAPE_SIZE_MISMATCH',
      path,
      `tensor "${name}": shape ${formatShape(shape as number[])} of ${dtype} needs ${expected} bytes ` +
        `but data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  const dims = [...(shape as number[])];
  return { name, dtype, shape: dims, byteOffset: dataStart + begin, byteLength: end - begin };
}

function parseHeader(path: string, bytes: Uint8Array, dataStart: number): ParsedHeader {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw err('BAD_HEADER', path, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(json)) throw err('BAD_HEADER', path, 'header JSON is not an object');
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json)) {
    if (name === METADATA_KEY) metadata = parseMetadata(path, value);
    else tensors.set(name, parseEntry(path, name, value, dataStart));
  }
  return { tensors, metadata };
}

/**
 * Checks that no two non-empty byte ranges overlap and that the data section holds every range. A file shorter
 * than a tightly packed layout needs is reported as TRUNCATED; offsets pointing past the end of the file in a
 * layout that is not packed (a gap or stray offset) are OFFSETS_OUT_OF_RANGE.
 */
function checkLayout(
  path: string,
  tensors: Map<string, TensorInfo>,
  dataStart: number,
  fileSize: number,
): void {
  const ranges = [...tensors.values()].sort(
    (a, b) => a.byteOffset - b.byteOffset || a.byteLength - b.byteLength,
  );
  let maxEnd = dataStart;
  let maxEndName = '';
  let totalBytes = 0;
  for (const t of ranges) {
    totalBytes += t.byteLength;
    if (t.byteLength === 0) continue;
    if (t.byteOffset < maxEnd) {
      throw err(
        'OVERLAPPING_OFFSETS',
        path,
        `tensors "${maxEndName}" and "${t.name}" have overlapping data_offsets`,
      );
    }
    maxEnd = t.byteOffset + t.byteLength;
    maxEndName = t.name;
  }
  if (maxEnd <= fileSize) return;
  const dataLength = fileSize - dataStart;
  const needed = maxEnd - dataStart;
  if (needed === totalBytes) {
    throw err(
      'TRUNCATED',
      path,
      `data section has ${dataLength} bytes but the header's tensors need ${needed} (file cut short?)`,
    );
  }
  const beyond = ranges.find((t) => t.byteOffset + t.byteLength > fileSize)!;
  throw err(
    'OFFSETS_OUT_OF_RANGE',
    path,
    `tensor "${beyond.name}": data_offsets [${beyond.byteOffset - dataStart}, ` +
      `${beyond.byteOffset - dataStart + beyond.byteLength}] lie beyond the ${dataLength}-byte data section`,
  );
}

function openFile(path: string, loader: FileLoader): RandomAccessFile {
  try {
    return loader.open(path);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOENT') throw err('NOT_FOUND', path, 'file not found');
    throw e;
  }
}

/** A view of one file already in memory (a fetched file). */
function bytesFile(bytes: Uint8Array): RandomAccessFile {
  return {
    size: bytes.byteLength,
    read: (position, length) => bytes.subarray(position, Math.min(position + length, bytes.byteLength)),
    close: () => {},
  };
}

/** An open .safetensors file: header parsed and validated, tensor data read on demand. */
export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  /** Absolute file offset of the data section (8 + header length). */
  readonly dataStart: number;
  readonly #tensors: Map<string, TensorInfo>;
  #file: RandomAccessFile | undefined;

  private constructor(path: string, file: RandomAccessFile, header: ParsedHeader, dataStart: number) {
    this.path = path;
    this.#file = file;
    this.metadata = header.metadata;
    this.#tensors = header.tensors;
    this.dataStart = dataStart;
  }

  /** Opens the file and validates its header; the file stays open until close(). */
  static open(path: string, loader?: FileLoader): SafetensorsFile {
    return SafetensorsFile.#openOn(path, openFile(path, resolveLoader(loader)));
  }

  /** A file already in memory (e.g. fetched into an ArrayBuffer); `path` names it in error messages. */
  static fromBytes(path: string, bytes: Uint8Array): SafetensorsFile {
    return SafetensorsFile.#openOn(path, bytesFile(bytes));
  }

  static #openOn(path: string, fd: RandomAccessFile): SafetensorsFile {
    try {
      const size = fd.size;
      if (size < 8) {
        throw err('TRUNCATED', path, `file has ${size} bytes, fewer than the 8-byte header length`);
      }
      const prefix = preadExact(fd, path, 0, 8, 'the header length');
      const headerLength = new DataView(prefix.buffer).getBigUint64(0, true);
      if (headerLength > BigInt(size - 8)) {
        throw err(
          'HEADER_LENGTH_BEYOND_FILE',
          path,
          `header length ${headerLength} exceeds the ${size - 8} bytes after the length prefix`,
        );
      }
      if (headerLength > BigInt(MAX_HEADER_BYTES)) {
        throw err('BAD_HEADER', path, `header length ${headerLength} exceeds ${MAX_HEADER_BYTES}`);
      }
      const dataStart = 8 + Number(headerLength);
      const header = parseHeader(path, preadExact(fd, path, 8, dataStart - 8, 'the header'), dataStart);
      checkLayout(path, header.tensors, dataStart, size);
      return new SafetensorsFile(path, fd, header, dataStart);
    } catch (e) {
      fd.close();
      throw e;
    }
  }

  /** Tensor names in header order. */
  names(): string[] {
    return [...this.#tensors.keys()];
  }

  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.#tensors.get(name);
    if (t === undefined) throw err('MISSING_TENSOR', this.path, `no tensor named "${name}"`);
    return { ...t, shape: [...t.shape] };
  }

  /** One tensor's raw little-endian bytes, read with a single positioned read. */
  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    if (this.#file === undefined)
      throw new KinemaError('IO_READ_AFTER_CLOSE', `${this.path}: read of "${name}" after close()`);
    return preadExact(this.#file, this.path, t.byteOffset, t.byteLength, `tensor "${name}"`);
  }

  /** The tensor as its native typed array (F16/BF16 as raw Uint16 bits, BOOL/U8/F8 as Uint8Array). */
  read(name: string): HostArray {
    return viewAs(this.info(name).dtype, this.readBytes(name));
  }

  /** The tensor converted to float32 (F64 rounds, 64-bit integers go through Number, BOOL is 0/1). */
  readFloat32(name: string): Float32Array {
    return toFloat32(this.info(name).dtype, this.readBytes(name));
  }

  close(): void {
    if (this.#file === undefined) return;
    const file = this.#file;
    this.#file = undefined;
    file.close();
  }
}

type HostArrayConstructor = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => HostArray;

/** The typed array each dtype is read into (16-bit floats as raw bits, 1-byte types as bytes). */
const HOST_ARRAY: Record<SafetensorsDType, HostArrayConstructor> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U64: BigUint64Array,
  U32: Uint32Array,
  U16: Uint16Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
  F8_E4M3: Uint8Array,
  F8_E5M2: Uint8Array,
};

export function viewAs(dtype: SafetensorsDType, bytes: Uint8Array): HostArray {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  return new HOST_ARRAY[dtype](bytes.buffer, bytes.byteOffset, n);
}

/** Raw little-endian bytes of `dtype` → float32 (see SafetensorsFile.readFloat32). */
export function toFloat32(dtype: SafetensorsDType, bytes: Uint8Array): Float32Array {
  switch (dtype) {
    case 'F32':
      return viewAs(dtype, bytes) as Float32Array;
    case 'F16':
      return f16ToF32(viewAs(dtype, bytes) as Uint16Array);
    case 'BF16':
      return bf16ToF32(viewAs(dtype, bytes) as Uint16Array);
    case 'F8_E5M2':
      return f8E5M2ToF32(bytes);
    case 'F8_E4M3':
      return f8E4M3ToF32(bytes);
    case 'BOOL':
      return Float32Array.from(bytes, (b) => (b !== 0 ? 1 : 0));
    case 'I64':
    case 'U64': {
      const src = viewAs(dtype, bytes) as BigInt64Array | BigUint64Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i]!);
      return out;
    }
    default:
      return Float32Array.from(viewAs(dtype, bytes) as Exclude<HostArray, BigInt64Array | BigUint64Array>);
  }
}

export type TensorSource = Record<string, TensorToWrite> | Map<string, TensorToWrite>;

interface PlannedTensor {
  name: string;
  bytes: Uint8Array;
}

export interface WritePlan {
  header: Uint8Array;
  tensors: PlannedTensor[];
  dataLength: number;
}

/** The header bytes and tensor bytes of a file, checked (the writers in safetensors.ts stream it). */
export function planWrite(
  target: string,
  source: TensorSource,
  metadata?: Record<string, string>,
): WritePlan {
  const entries = source instanceof Map ? [...source.entries()] : Object.entries(source);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const tensors = entries.map(([name, t]) => ({ name, bytes: checkTensorToWrite(target, name, t) }));
  const header = buildHeader(
    target,
    entries.map(([name, t], i) => ({
      name,
      dtype: t.dtype,
      shape: t.shape,
      byteLength: tensors[i]!.bytes.byteLength,
    })),
    metadata,
  );
  return { header: header.bytes, tensors, dataLength: header.dataLength };
}

/** One tensor of a streamed write: its header entry and a function that reads its bytes when it is written. */
export interface LazyTensorToWrite {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  byteLength: number;
  read: () => Uint8Array;
}

function buildHeader(
  target: string,
  entries: readonly { name: string; dtype: SafetensorsDType; shape: readonly number[]; byteLength: number }[],
  metadata?: Record<string, string>,
): { bytes: Uint8Array; dataLength: number } {
  // Built from entry lists (not by assignment) so that a key like "__proto__" stays an ordinary key.
  const header: [string, unknown][] = [];
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw err('BAD_HEADER', target, `metadata value for "${k}" is not a string`);
      }
    }
    header.push([METADATA_KEY, Object.fromEntries(Object.entries(metadata))]);
  }
  let offset = 0;
  for (const t of entries) {
    header.push([
      t.name,
      { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + t.byteLength] },
    ]);
    offset += t.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(Object.fromEntries(header)));
  const padded = Math.ceil(json.length / 8) * 8;
  const headerBytes = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(headerBytes.buffer).setBigUint64(0, BigInt(padded), true);
  headerBytes.set(json, 8);
  return { bytes: headerBytes, dataLength: offset };
}

function checkTensorToWrite(target: string, name: string, t: TensorToWrite): Uint8Array {
  if (name === METADATA_KEY) {
    throw err('BAD_HEADER', target, `"${METADATA_KEY}" is reserved and cannot name a tensor`);
  }
  if (!isDType(t.dtype)) {
    throw err('UNKNOWN_DTYPE', target, `tensor "${name}": unknown dtype "${String(t.dtype)}"`);
  }
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw err('BAD_HEADER', target, `tensor "${name}": shape ${formatShape(t.shape)} is invalid`);
  }
  const expected = elementCount(t.shape) * BigInt(DTYPE_BYTES[t.dtype]);
  if (expected !== BigInt(t.data.byteLength)) {
    throw err(
      'SHAPE_SIZE_MISMATCH',
      target,
      `tensor "${name}": shape ${formatShape(t.shape)} of ${t.dtype} needs ${expected} bytes, data has ${t.data.byteLength}`,
    );
  }
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** The whole file in memory (header padded with spaces to a multiple of 8, tensors sorted by name). */
export function serializeSafetensors(tensors: TensorSource, metadata?: Record<string, string>): Uint8Array {
  const plan = planWrite('(in memory)', tensors, metadata);
  const out = new Uint8Array(plan.header.length + plan.dataLength);
  out.set(plan.header, 0);
  let offset = plan.header.length;
  for (const t of plan.tensors) {
    out.set(t.bytes, offset);
    offset += t.bytes.byteLength;
  }
  return out;
}

/**
 * The checked, name-sorted tensors and header of a streamed write (writeSafetensorsLazy in safetensors.ts):
 * every entry's size is checked against its shape before any byte is written.
 */
export function planLazyWrite(
  path: string,
  tensors: readonly LazyTensorToWrite[],
  metadata?: Record<string, string>,
): { sorted: LazyTensorToWrite[]; header: Uint8Array } {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const t of sorted) {
    if (t.name === METADATA_KEY)
      throw err('BAD_HEADER', path, `"${METADATA_KEY}" is reserved and cannot name a tensor`);
    const expected = elementCount(t.shape) * BigInt(DTYPE_BYTES[t.dtype]);
    if (expected !== BigInt(t.byteLength)) {
      throw err(
        'SHAPE_SIZE_MISMATCH',
        path,
        `tensor "${t.name}": shape ${formatShape(t.shape)} of ${t.dtype} needs ${expected} bytes, not ${t.byteLength}`,
      );
    }
  }
  return { sorted, header: buildHeader(path, sorted, metadata).bytes };
}

/** The bytes a lazy tensor's read() returned, checked against the length its header entry promised. */
export function checkLazyRead(path: string, t: LazyTensorToWrite, bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength !== t.byteLength) {
    throw err(
      'SHAPE_SIZE_MISMATCH',
      path,
      `tensor "${t.name}" read ${bytes.byteLength} bytes, header says ${t.byteLength}`,
    );
  }
  return bytes;
}
