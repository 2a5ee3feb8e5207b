// The data side of a PyTorch checkpoint: where each storage's bytes lie, tensors as strided views of storages
// (checked against them when the pickle is read, materialised contiguous on demand), and the byte sources the
// unpickler reads from (a file region with read-ahead for the legacy layout, memory for a zip's data.pkl).
import { DTYPE_BYTES, type SafetensorsDType } from './safetensors.js';
import type { ByteSource } from './torch_pickle.js';
import { preadExact } from './zip_stored.js';

/** PyTorch storage class → safetensors dtype (the dtypes both formats share; complex and quantized are refused). */
export const STORAGE_DTYPE: Record<string, SafetensorsDType> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

/** Where a storage's bytes are: absolute file offset, element count and dtype. */
export class StorageRef {
  /** Absolute file offset of element 0; set when the storage's record is located (legacy: after the pickle). */
  byteOffset = -1;
  constructor(
    readonly key: string,
    readonly dtype: SafetensorsDType,
    /** Elements the storage holds (as the file declares them, checked against the bytes present). */
    readonly numel: number,
  ) {}
}

/** A tensor in the checkpoint: a strided view of a storage, read on demand. */
export class CkptTensor {
  parameter = false;
  constructor(
    readonly storage: StorageRef,
    readonly storageOffset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
    readonly requiresGrad: boolean,
  ) {}
  get dtype(): SafetensorsDType {
    return this.storage.dtype;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get byteLength(): number {
    return this.numel * DTYPE_BYTES[this.dtype];
  }
  /** Row-major with no gaps (size-1 dimensions may have any stride, as in PyTorch). */
  get contiguous(): boolean {
    let expected = 1;
    for (let d = this.shape.length - 1; d >= 0; d--) {
      if (this.shape[d] !== 1 && this.stride[d] !== expected) return false;
      expected *= this.shape[d]!;
    }
    return true;
  }
}

/** A byte source over a file region with a read-ahead buffer (the legacy format's pickles lie in the file). */
export class FileSource implements ByteSource {
  #buf: Uint8Array = new Uint8Array(0);
  #bufStart = 0;
  #pos: number;
  constructor(
    readonly path: string,
    private readonly fd: number,
    start: number,
    private readonly end: number,
  ) {
    this.#pos = start;
  }
  remaining(): number {
    return this.end - this.#pos;
  }
  position(): number {
    return this.#pos;
  }
  #fill(n: number): void {
    const have = this.#bufStart + this.#buf.length - this.#pos;
    if (this.#pos >= this.#bufStart && have >= n) return;
    const len = Math.min(Math.max(n, 1 << 16), this.end - this.#pos);
    this.#buf = preadExact(this.fd, this.path, this.#pos, len, 'the pickle');
    this.#bufStart = this.#pos;
  }
  readByte(): number {
    this.#fill(1);
    return this.#buf[this.#pos++ - this.#bufStart]!;
  }
  readBytes(n: number): Uint8Array {
    this.#fill(n);
    const at = this.#pos - this.#bufStart;
    this.#pos += n;
    return this.#buf.subarray(at, at + n);
  }
}

export class MemorySource implements ByteSource {
  #pos = 0;
  constructor(
    readonly path: string,
    private readonly bytes: Uint8Array,
  ) {}
  remaining(): number {
    return this.bytes.length - this.#pos;
  }
  position(): number {
    return this.#pos;
  }
  readByte(): number {
    return this.bytes[this.#pos++]!;
  }
  readBytes(n: number): Uint8Array {
    const out = this.bytes.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }
}

/** Copies a strided view out of `src` (element 0 at byte 0) into a contiguous row-major buffer. */
export function gather(
  src: Uint8Array,
  elementBytes: number,
  shape: readonly number[],
  stride: readonly number[],
): Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(n * elementBytes);
  // Typed views copy whole elements bit-exactly (no float canonicalisation: integer views only).
  const words = elementBytes === 8 ? 2 : 1;
  const unit = elementBytes === 8 ? 4 : elementBytes;
  const View = unit === 4 ? Uint32Array : unit === 2 ? Uint16Array : Uint8Array;
  const s = new View(src.buffer as ArrayBuffer, src.byteOffset, src.byteLength / unit);
  const d = new View(out.buffer, 0, out.byteLength / unit);
  const rank = shape.length;
  const index = new Array<number>(rank).fill(0);
  let from = 0;
  for (let i = 0; i < n; i++) {
    for (let w = 0; w < words; w++) d[i * words + w] = s[from * words + w]!;
    // Odometer over the multi-index, last dimension fastest.
    for (let dim = rank - 1; dim >= 0; dim--) {
      index[dim]!++;
      from += stride[dim]!;
      if (index[dim]! < shape[dim]!) break;
      from -= stride[dim]! * shape[dim]!;
      index[dim] = 0;
    }
  }
  return out;
}
