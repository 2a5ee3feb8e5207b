// Safe reader for PyTorch checkpoints (`torch.save` files: `.ckpt`, `.pt`, `.pth`, `.bin`), both layouts:
//  - zip (PyTorch ≥ 1.6): `<name>/data.pkl` (the pickled object), `<name>/data/<key>` (one STORED record per
//    storage), `<name>/byteorder` (PyTorch ≥ 2.1);
//  - legacy: five pickles in a row (magic number, protocol version, system info, the object, the storage keys)
//    followed by each storage as an int64 element count and its raw bytes.
// The object is read by the restricted unpickler (torch_pickle.ts): nothing in the file is imported or run.
// Tensors are lazy views (storage, offset, shape, stride) checked against their storage when the pickle is read
// and materialised contiguous only when asked for, so a 5 GB checkpoint needs heap for one tensor at a time.
// Lightning files (`{state_dict, global_step, …}`) expose `state_dict`; its scalar siblings become metadata.
import { closeSync, fstatSync, openSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { KinemaError } from '../errors.js';
import { DTYPE_BYTES, toFloat32, viewAs, type HostArray, type SafetensorsDType } from './safetensors.js';
import {
  PickleDict,
  PickleGlobal,
  PickleTuple,
  STORAGE_TYPES,
  typeName,
  unpickle,
  type ByteSource,
  type TensorRebuild,
} from './torch_pickle.js';
import { entryDataOffset, preadExact, readZipDirectory, type ZipEntry } from './zip_stored.js';
import {
  CkptTensor,
  FileSource,
  MemorySource,
  STORAGE_DTYPE,
  StorageRef,
  gather,
} from './torch_ckpt_storage.js';

export { CkptTensor } from './torch_ckpt_storage.js';

export type CheckpointErrorCode =
  | 'CKPT_NOT_FOUND'
  | 'CKPT_NOT_A_CHECKPOINT'
  | 'CKPT_UNSUPPORTED'
  | 'CKPT_MISSING_RECORD'
  | 'CKPT_UNSUPPORTED_DTYPE'
  | 'CKPT_STORAGE_OUT_OF_RANGE'
  | 'CKPT_NO_STATE_DICT'
  | 'CKPT_DUPLICATE_KEY'
  | 'CKPT_MISSING_TENSOR'
  | 'CKPT_KEY_MISMATCH';

/** The legacy format's first pickle. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
/** data.pkl is the object graph only; a pickle above this is corrupt (a real 5 GB checkpoint's is a few MB). */
const MAX_PICKLE_BYTES = 1 << 30;
/** Nesting of dicts/lists walked to find tensors (hostile files can nest deeper than a JS stack). */
const MAX_DEPTH = 64;
/** Entries walked in the state dict, shared containers counted at each place they appear. */
const MAX_WALK = 10_000_000;

function ckptError(code: CheckpointErrorCode, path: string, message: string): KinemaError {
  return new KinemaError(code, `${path}: ${message}`);
}

export interface TorchCheckpointOptions {
  /** Unknown globals outside the tensors become inert placeholders instead of refusing the file. */
  inertUnknown?: boolean;
  /**
   * The top-level entry whose tensors `keys()` lists (default: `state_dict` when the file has one, as Lightning
   * files do, else the whole top-level dict). Missing or not a dict: CKPT_NO_STATE_DICT.
   */
  stateDictKey?: string;
}

export interface CkptTensorInfo {
  dtype: SafetensorsDType;
  shape: number[];
}

export class TorchCheckpoint {
  readonly path: string;
  readonly format: 'zip' | 'legacy';
  /** The whole unpickled object (dicts as PickleDict, tensors as CkptTensor, unknown objects as InertObject). */
  readonly root: unknown;
  /** Scalar entries beside a Lightning file's state_dict (global_step, epoch, …), as strings. */
  readonly metadata: Record<string, string>;
  /** Non-tensor leaves found inside the state dict (kept out of `keys()`), by their key. */
  readonly skipped: string[];
  #fd: number | undefined;
  readonly #fileSize: number;
  readonly #tensors: Map<string, CkptTensor>;

  private constructor(path: string, fd: number, opts: TorchCheckpointOptions) {
    this.path = path;
    this.#fd = fd;
    this.#fileSize = fstatSync(fd).size;
    const head = preadExact(fd, path, 0, Math.min(this.#fileSize, 512), 'the file header');
    const isZip = head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
    if (isZip) {
      this.format = 'zip';
      this.root = this.#readZip(opts);
    } else if (head[0] === 0x80) {
      this.format = 'legacy';
      this.root = this.#readLegacy(opts);
    } else if (head.length >= 262 && new TextDecoder().decode(head.subarray(257, 262)) === 'ustar') {
      throw ckptError(
        'CKPT_UNSUPPORTED',
        path,
        'tar checkpoint (PyTorch < 0.4): re-save it with a current PyTorch',
      );
    } else {
      throw ckptError(
        'CKPT_NOT_A_CHECKPOINT',
        path,
        `not a PyTorch checkpoint (starts with bytes ${[...head.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}; want a zip or a pickle)`,
      );
    }
    const { stateDict, metadata } = this.#locateStateDict(opts.stateDictKey);
    this.metadata = metadata;
    this.skipped = [];
    this.#tensors = this.#flatten(stateDict, this.skipped);
  }

  /** Opens and parses `path` (the pickle only; tensor data stays on disk until read). */
  static open(path: string, opts: TorchCheckpointOptions = {}): TorchCheckpoint {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new KinemaError('CKPT_NOT_FOUND', `${path}: cannot open checkpoint (${(e as Error).message})`, {
        cause: e,
      });
    }
    try {
      return new TorchCheckpoint(path, fd, opts);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** State-dict keys in file order. */
  keys(): string[] {
    return [...this.#tensors.keys()];
  }

  has(key: string): boolean {
    return this.#tensors.has(key);
  }

  tensor(key: string): CkptTensor {
    const t = this.#tensors.get(key);
    if (t === undefined) throw ckptError('CKPT_MISSING_TENSOR', this.path, `no tensor named "${key}"`);
    return t;
  }

  info(key: string): CkptTensorInfo {
    const t = this.tensor(key);
    return { dtype: t.dtype, shape: [...t.shape] };
  }

  /** The tensor's bytes, contiguous row-major little-endian, in its own dtype (views are gathered). */
  readBytes(key: string): Uint8Array {
    const t = this.tensor(key);
    if (this.#fd === undefined)
      throw new KinemaError('IO_READ_AFTER_CLOSE', `${this.path}: read of "${key}" after close()`);
    const e = DTYPE_BYTES[t.dtype];
    const n = t.numel;
    if (n === 0) return new Uint8Array(0);
    const base = t.storage.byteOffset + t.storageOffset * e;
    try {
      if (t.contiguous) return preadExact(this.#fd, this.path, base, n * e, `tensor "${key}"`);
      const span = 1 + t.shape.reduce((s, d, i) => s + (d - 1) * t.stride[i]!, 0);
      const src = preadExact(this.#fd, this.path, base, span * e, `tensor "${key}"`);
      return gather(src, e, t.shape, t.stride);
    } catch (err) {
      // A view can be far larger than its storage (stride 0); an impossible allocation is the file's fault.
      if (!(err instanceof RangeError)) throw err;
      throw ckptError(
        'CKPT_STORAGE_OUT_OF_RANGE',
        this.path,
        `tensor "${key}" of shape [${t.shape.join(', ')}] (${t.byteLength} bytes) cannot be materialised: ${err.message}`,
      );
    }
  }

  /** The tensor as its native typed array (F16/BF16 as raw Uint16 bits, BOOL/U8 as bytes), like SafetensorsFile. */
  read(key: string): HostArray {
    return viewAs(this.tensor(key).dtype, this.readBytes(key));
  }

  readFloat32(key: string): Float32Array {
    return toFloat32(this.tensor(key).dtype, this.readBytes(key));
  }

  close(): void {
    if (this.#fd === undefined) return;
    const fd = this.#fd;
    this.#fd = undefined;
    closeSync(fd);
  }

  #rebuild = (spec: TensorRebuild): CkptTensor => {
    const s = spec.storage;
    if (!(s instanceof StorageRef)) {
      throw ckptError(
        'CKPT_NOT_A_CHECKPOINT',
        this.path,
        `tensor rebuilt from a value of type ${typeName(s)} instead of a storage`,
      );
    }
    let numel = 1;
    for (const d of spec.size) numel *= d;
    const span = numel === 0 ? 0 : 1 + spec.size.reduce((acc, d, i) => acc + (d - 1) * spec.stride[i]!, 0);
    if (!Number.isSafeInteger(numel * DTYPE_BYTES[s.dtype]) || spec.storageOffset + span > s.numel) {
      throw ckptError(
        'CKPT_STORAGE_OUT_OF_RANGE',
        this.path,
        `tensor of shape [${spec.size.join(', ')}] stride [${spec.stride.join(', ')}] at offset ${spec.storageOffset} ` +
          `reaches element ${spec.storageOffset + span} of storage "${s.key}", which holds ${s.numel}`,
      );
    }
    return new CkptTensor(s, spec.storageOffset, spec.size, spec.stride, spec.requiresGrad);
  };

  /** Validates a storage persistent id ('storage', type, key, location, numel[, view]) → StorageRef. */
  #storageFromPid(pid: unknown, storages: Map<string, StorageRef>): StorageRef {
    if (!(pid instanceof PickleTuple) || pid.items[0] !== 'storage' || pid.items.length < 5) {
      throw ckptError(
        'CKPT_NOT_A_CHECKPOINT',
        this.path,
        `persistent id of type ${typeName(pid)} is not a storage reference`,
      );
    }
    const [, type, key, , numel, view] = pid.items;
    const typeNameStr = type instanceof PickleGlobal && type.module === 'torch' ? type.name : '';
    if (!STORAGE_TYPES.has(typeNameStr)) {
      throw ckptError(
        'CKPT_NOT_A_CHECKPOINT',
        this.path,
        `storage of type ${typeName(type)} (want a torch.*Storage class)`,
      );
    }
    const dtype = STORAGE_DTYPE[typeNameStr];
    if (dtype === undefined) {
      throw ckptError(
        'CKPT_UNSUPPORTED_DTYPE',
        this.path,
        `storage "${String(key)}" is a torch.${typeNameStr} (not representable in safetensors)`,
      );
    }
    if (typeof key !== 'string' || typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) {
      throw ckptError(
        'CKPT_NOT_A_CHECKPOINT',
        this.path,
        `storage reference with key ${String(key)} and size ${String(numel)}`,
      );
    }
    if (view !== undefined && view !== null) {
      throw ckptError(
        'CKPT_UNSUPPORTED',
        this.path,
        `storage "${key}" is a legacy storage view (PyTorch < 0.4)`,
      );
    }
    const known = storages.get(key);
    if (known !== undefined) {
      if (known.dtype !== dtype || known.numel !== numel) {
        throw ckptError(
          'CKPT_NOT_A_CHECKPOINT',
          this.path,
          `storage "${key}" is declared twice with different types or sizes`,
        );
      }
      return known;
    }
    const s = new StorageRef(key, dtype, numel);
    storages.set(key, s);
    return s;
  }

  #readZip(opts: TorchCheckpointOptions): unknown {
    const fd = this.#fd!;
    const entries = readZipDirectory(fd, this.path, this.#fileSize);
    const pkl = [...entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkl === undefined) {
      throw ckptError(
        'CKPT_NOT_A_CHECKPOINT',
        this.path,
        'zip has no <name>/data.pkl record (not a torch.save file)',
      );
    }
    const prefix = pkl.slice(0, -'data.pkl'.length);
    const byteorder = entries.get(`${prefix}byteorder`);
    if (byteorder !== undefined) {
      const order = new TextDecoder().decode(this.#record(byteorder, 16)).trim();
      if (order !== 'little') {
        throw ckptError(
          'CKPT_UNSUPPORTED',
          this.path,
          `byteorder record says "${order}"; only little-endian files are read`,
        );
      }
    }
    const source = new MemorySource(`${this.path}:${pkl}`, this.#record(entries.get(pkl)!, MAX_PICKLE_BYTES));
    const storages = new Map<string, StorageRef>();
    return unpickle(source, {
      inertUnknown: opts.inertUnknown ?? false,
      rebuildTensor: this.#rebuild,
      persistentLoad: (pid) => {
        const s = this.#storageFromPid(pid, storages);
        if (s.byteOffset >= 0) return s;
        const entry = entries.get(`${prefix}data/${s.key}`);
        if (entry === undefined) {
          throw ckptError(
            'CKPT_MISSING_RECORD',
            this.path,
            `storage "${s.key}" has no record ${prefix}data/${s.key}`,
          );
        }
        if (entry.method !== 0) {
          throw ckptError(
            'CKPT_UNSUPPORTED',
            this.path,
            `record ${entry.name} is compressed (method ${entry.method}); PyTorch stores tensors uncompressed`,
          );
        }
        const need = s.numel * DTYPE_BYTES[s.dtype];
        if (entry.size < need) {
          throw ckptError(
            'CKPT_STORAGE_OUT_OF_RANGE',
            this.path,
            `storage "${s.key}" declares ${s.numel} ${s.dtype} elements (${need} bytes) but its record has ${entry.size}`,
          );
        }
        s.byteOffset = entryDataOffset(fd, this.path, this.#fileSize, entry);
        return s;
      },
    });
  }

  /** A small record read whole (stored or deflated). */
  #record(entry: ZipEntry, limit: number): Uint8Array {
    if (entry.compressedSize > limit || entry.size > limit) {
      throw ckptError(
        'CKPT_NOT_A_CHECKPOINT',
        this.path,
        `record ${entry.name} is ${entry.size} bytes (limit ${limit})`,
      );
    }
    const at = entryDataOffset(this.#fd!, this.path, this.#fileSize, entry);
    const raw = preadExact(this.#fd!, this.path, at, entry.compressedSize, `record ${entry.name}`);
    if (entry.method === 0) return raw;
    if (entry.method !== 8) {
      throw ckptError('CKPT_UNSUPPORTED', this.path, `record ${entry.name} uses zip method ${entry.method}`);
    }
    try {
      return new Uint8Array(inflateRawSync(raw, { maxOutputLength: limit }));
    } catch (e) {
      throw ckptError(
        'CKPT_NOT_A_CHECKPOINT',
        this.path,
        `record ${entry.name} does not inflate (${(e as Error).message})`,
      );
    }
  }

  #readLegacy(opts: TorchCheckpointOptions): unknown {
    const fd = this.#fd!;
    const src = new FileSource(this.path, fd, 0, this.#fileSize);
    const plain = {
      persistentLoad: (): never => {
        throw ckptError('CKPT_NOT_A_CHECKPOINT', this.path, 'persistent id in a legacy header pickle');
      },
      rebuildTensor: (): never => {
        throw ckptError('CKPT_NOT_A_CHECKPOINT', this.path, 'tensor in a legacy header pickle');
      },
    };
    const magic = unpickle(src, plain);
    if (magic !== LEGACY_MAGIC) {
      throw ckptError(
        'CKPT_NOT_A_CHECKPOINT',
        this.path,
        'a pickle, but not a torch.save file (no PyTorch magic number)',
      );
    }
    const protocol = unpickle(src, plain);
    if (protocol !== LEGACY_PROTOCOL) {
      throw ckptError(
        'CKPT_UNSUPPORTED',
        this.path,
        `legacy protocol version ${String(protocol)} (want ${LEGACY_PROTOCOL})`,
      );
    }
    const sysInfo = unpickle(src, plain);
    if (sysInfo instanceof PickleDict && sysInfo.map.get('little_endian') === false) {
      throw ckptError(
        'CKPT_UNSUPPORTED',
        this.path,
        'saved on a big-endian machine; only little-endian files are read',
      );
    }
    const storages = new Map<string, StorageRef>();
    const root = unpickle(src, {
      inertUnknown: opts.inertUnknown ?? false,
      rebuildTensor: this.#rebuild,
      persistentLoad: (pid) => this.#storageFromPid(pid, storages),
    });
    const keys = unpickle(src, plain);
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) {
      throw ckptError('CKPT_NOT_A_CHECKPOINT', this.path, 'legacy storage key list is not a list of strings');
    }
    // Each storage: int64 element count, then its bytes; in the order of the key list.
    let at = src.position();
    for (const key of keys as string[]) {
      const s = storages.get(key);
      if (s === undefined)
        throw ckptError('CKPT_NOT_A_CHECKPOINT', this.path, `storage "${key}" is listed but never used`);
      const head = preadExact(fd, this.path, at, 8, `the size of storage "${key}"`);
      const count = new DataView(head.buffer).getBigInt64(0, true);
      if (count !== BigInt(s.numel)) {
        throw ckptError(
          'CKPT_STORAGE_OUT_OF_RANGE',
          this.path,
          `storage "${key}" declares ${s.numel} elements but its data says ${count}`,
        );
      }
      s.byteOffset = at + 8;
      at += 8 + s.numel * DTYPE_BYTES[s.dtype];
      if (at > this.#fileSize) {
        throw new KinemaError(
          'CKPT_TRUNCATED',
          `${this.path}: storage "${key}" ends at byte ${at}, past the end of the file (${this.#fileSize} bytes)`,
        );
      }
    }
    for (const s of storages.values()) {
      if (s.byteOffset < 0)
        throw ckptError(
          'CKPT_MISSING_RECORD',
          this.path,
          `storage "${s.key}" is not in the file's storage list`,
        );
    }
    return root;
  }

  #locateStateDict(key?: string): { stateDict: PickleDict; metadata: Record<string, string> } {
    const root = this.root;
    if (!(root instanceof PickleDict)) {
      throw ckptError(
        'CKPT_NO_STATE_DICT',
        this.path,
        `top-level object is of type ${typeName(root)}, not a dict of tensors`,
      );
    }
    const inner = root.map.get(key ?? 'state_dict');
    if (key !== undefined && !(inner instanceof PickleDict)) {
      throw ckptError(
        'CKPT_NO_STATE_DICT',
        this.path,
        `top-level entry "${key}" is ${inner === undefined ? 'absent' : `of type ${typeName(inner)}`}, not a dict of tensors`,
      );
    }
    if (!(inner instanceof PickleDict)) return { stateDict: root, metadata: {} };
    const metadata: Record<string, string> = {};
    for (const [k, v] of root.map) {
      if (
        typeof k === 'string' &&
        (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')
      ) {
        metadata[k] = String(v);
      }
    }
    return { stateDict: inner, metadata };
  }

  /** Nested dicts/lists under the state dict → dotted keys (PyTorch's own naming); non-tensor leaves are listed. */
  #flatten(dict: PickleDict, skipped: string[]): Map<string, CkptTensor> {
    const out = new Map<string, CkptTensor>();
    const onPath = new Set<unknown>();
    // A pickle can refer to one list from many places: a budget on visited entries keeps a DAG nested 60 deep
    // (2^60 paths) from hanging the walk.
    let budget = MAX_WALK;
    const walk = (value: unknown, key: string, depth: number): void => {
      if (--budget < 0) {
        throw ckptError(
          'CKPT_NOT_A_CHECKPOINT',
          this.path,
          `state dict has more than ${MAX_WALK} entries (shared nested containers?)`,
        );
      }
      if (value instanceof CkptTensor) {
        if (out.has(key))
          throw ckptError('CKPT_DUPLICATE_KEY', this.path, `two tensors flatten to the key "${key}"`);
        out.set(key, value);
        return;
      }
      const children: [string, unknown][] =
        value instanceof PickleDict
          ? [...value.map].map(([k, v]) => [String(k), v])
          : Array.isArray(value)
            ? value.map((v, i) => [String(i), v])
            : [];
      if (children.length === 0 && !(value instanceof PickleDict || Array.isArray(value))) {
        skipped.push(key);
        return;
      }
      if (depth >= MAX_DEPTH || onPath.has(value)) {
        throw ckptError(
          'CKPT_NOT_A_CHECKPOINT',
          this.path,
          `state dict nests deeper than ${MAX_DEPTH} levels or refers to itself at "${key}"`,
        );
      }
      onPath.add(value);
      for (const [k, v] of children) walk(v, key === '' ? k : `${key}.${k}`, depth + 1);
      onPath.delete(value);
    };
    walk(dict, '', 0);
    return out;
  }
}

/** Dicts, lists, tuples and scalars of a pickled value as plain JSON-like data (tensors and other objects: null). */
export function toPlain(value: unknown, depth = 0): unknown {
  if (depth > 32) return null;
  if (
    value === null ||
    typeof value === 'string' ||
    typeof value === 'number' ||
    typeof value === 'boolean'
  ) {
    return value;
  }
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map((v) => toPlain(v, depth + 1));
  if (value instanceof PickleTuple) return value.items.map((v) => toPlain(v, depth + 1));
  if (value instanceof PickleDict) {
    return Object.fromEntries([...value.map].map(([k, v]) => [String(k), toPlain(v, depth + 1)]));
  }
  return null;
}
