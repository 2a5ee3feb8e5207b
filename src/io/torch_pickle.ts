// A restricted unpickler for PyTorch checkpoints. Python's pickle is a small stack machine whose GLOBAL and
// REDUCE opcodes import and call arbitrary functions: loading an untrusted `.ckpt` with plain `pickle` runs
// whatever it names (`os.system`, `builtins.eval`, …). This machine never imports or calls anything: it builds
// plain values, and the only "calls" it performs are the few constructors a state dict needs, re-implemented
// here, from an allow-list anchored on PyTorch's own `weights_only=True` unpickler (torch/_weights_only_unpickler.py):
// OrderedDict, the tensor/parameter rebuild functions, storage types, torch.Size and `_codecs.encode` (bytes in
// protocol 2). Any other global is refused by name before anything is built from it — unless the caller asks for
// inert placeholders, which record the name and arguments and are never called.
import { KinemaError } from '../errors.js';
import {
  InertObject,
  PickleDict,
  PickleGlobal,
  PickleSet,
  PickleTuple,
  callAllowed,
  isAllowedGlobal,
  typeName,
  type CallContext,
  type TensorRebuild,
} from './torch_pickle_values.js';

export * from './torch_pickle_values.js';

export type PickleErrorCode =
  'CKPT_UNSAFE_GLOBAL' | 'CKPT_UNSAFE_CALL' | 'CKPT_BAD_PICKLE' | 'CKPT_TRUNCATED';

/** Something the unpickler reads opcodes and arguments from. */
export interface ByteSource {
  readonly path: string;
  /** Bytes left to read. */
  remaining(): number;
  readByte(): number;
  readBytes(n: number): Uint8Array;
  /** Absolute position of the next byte (for error messages and for what follows a legacy pickle). */
  position(): number;
}

export interface UnpickleOptions {
  /** BINPERSID / PERSID: turns a persistent id (PyTorch: a storage tuple) into a value. */
  persistentLoad: (pid: unknown) => unknown;
  /** Builds the caller's tensor object from validated rebuild arguments. */
  rebuildTensor: (spec: TensorRebuild) => unknown;
  /** Unknown globals become InertObjects instead of being refused. */
  inertUnknown?: boolean;
}

/** Longest text line (GLOBAL module/name, PERSID, protocol-0 numbers) accepted. */
const MAX_LINE = 4096;
const decoder = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');

function fail(code: PickleErrorCode, src: ByteSource, at: number, message: string): KinemaError {
  return new KinemaError(code, `${src.path}: pickle at byte ${at}: ${message}`);
}

/** Pickle's LONG1/LONG4 payload: little-endian two's complement. */
function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  if (bytes[bytes.length - 1]! & 0x80) v -= 1n << BigInt(8 * bytes.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Runs the pickle in `src` up to its STOP opcode and returns the value it built. */
export function unpickle(src: ByteSource, opts: UnpickleOptions): unknown {
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let at = src.position();

  const bad = (message: string): KinemaError => fail('CKPT_BAD_PICKLE', src, at, message);
  const need = (n: number): void => {
    if (n > src.remaining()) {
      throw fail(
        'CKPT_TRUNCATED',
        src,
        at,
        `needs ${n} more bytes, ${src.remaining()} left (file truncated?)`,
      );
    }
  };
  const bytes = (n: number): Uint8Array => {
    need(n);
    return src.readBytes(n);
  };
  const uint = (n: 1 | 2 | 4 | 8): number => {
    const b = bytes(n);
    const v = new DataView(b.buffer, b.byteOffset, n);
    if (n === 1) return v.getUint8(0);
    if (n === 2) return v.getUint16(0, true);
    if (n === 4) return v.getUint32(0, true);
    const big = v.getBigUint64(0, true);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`length ${big} is out of range`);
    return Number(big);
  };
  const line = (): string => {
    const out: number[] = [];
    for (;;) {
      need(1);
      const c = src.readByte();
      if (c === 0x0a) break;
      if (out.length >= MAX_LINE) throw bad(`text argument longer than ${MAX_LINE} bytes`);
      out.push(c);
    }
    return decoder.decode(Uint8Array.from(out));
  };
  // Like CPython's unpickler: MARK records a fence in a separate stack; nothing below it may be popped.
  const fence = (): number => (marks.length > 0 ? marks[marks.length - 1]! : 0);
  const pop = (): unknown => {
    if (stack.length <= fence()) throw bad('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length <= fence()) throw bad('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) throw bad('no MARK on the stack');
    return stack.splice(m);
  };
  const memoGet = (i: number): unknown => {
    if (!memo.has(i)) throw bad(`memo key ${i} was never stored`);
    return memo.get(i);
  };
  const memoPut = (i: number): void => {
    memo.set(i, top());
  };

  const global = (module: string, name: string): unknown => {
    if (isAllowedGlobal(module, name)) return new PickleGlobal(module, name);
    if (opts.inertUnknown === true) return new InertObject(module, name);
    throw fail(
      'CKPT_UNSAFE_GLOBAL',
      src,
      at,
      `refusing global "${module}.${name}": not on the allow-list of a weights-only checkpoint (nothing was imported or run; ` +
        'kinema convert --inert-unknown keeps unknown objects outside the tensors as inert placeholders)',
    );
  };

  const ctx: CallContext = {
    bad,
    unsafe: (message) => fail('CKPT_UNSAFE_CALL', src, at, message),
    rebuildTensor: opts.rebuildTensor,
  };
  const call = (fn: unknown, args: unknown): unknown => callAllowed(fn, args, ctx);

  const setItem = (dict: unknown, key: unknown, value: unknown): void => {
    if (!(dict instanceof PickleDict)) throw bad('SETITEM on something that is not a dict');
    dict.map.set(key, value);
  };

  for (;;) {
    at = src.position();
    need(1);
    const op = src.readByte();
    switch (op) {
      case 0x80: // PROTO
        if (uint(1) > 5) throw bad('pickle protocol above 5');
        break;
      case 0x95: // FRAME: a length hint only
        uint(8);
        break;
      case 0x2e: // STOP
        if (marks.length > 0) throw bad('STOP with an open MARK');
        return pop();
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP (at a fence it pops the MARK, as CPython does)
        if (stack.length > fence()) stack.pop();
        else popMark();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: {
        // BININT
        const b = bytes(4);
        stack.push(new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true));
        break;
      }
      case 0x4b: // BININT1
        stack.push(uint(1));
        break;
      case 0x4d: // BININT2
        stack.push(uint(2));
        break;
      case 0x8a: // LONG1
        stack.push(decodeLong(bytes(uint(1))));
        break;
      case 0x8b: {
        // LONG4
        const n = uint(4);
        if (n > 1 << 20) throw bad(`LONG4 of ${n} bytes`);
        stack.push(decodeLong(bytes(n)));
        break;
      }
      case 0x47: {
        // BINFLOAT (big-endian double)
        const b = bytes(8);
        stack.push(new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, false));
        break;
      }
      case 0x49: {
        // INT (protocol 0): "I01\n" / "I00\n" are the booleans
        const s = line();
        if (s === '01' || s === '00') stack.push(s === '01');
        else if (/^-?\d{1,15}$/.test(s)) stack.push(Number(s));
        else throw bad(`INT "${s.slice(0, 40)}"`);
        break;
      }
      case 0x46: {
        // FLOAT (protocol 0)
        const s = line();
        const v = Number(s);
        if (s.trim() === '' || Number.isNaN(v)) throw bad(`FLOAT "${s.slice(0, 40)}"`);
        stack.push(v);
        break;
      }
      case 0x58: // BINUNICODE
        stack.push(decoder.decode(bytes(uint(4))));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(decoder.decode(bytes(uint(1))));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(decoder.decode(bytes(uint(8))));
        break;
      case 0x54: // BINSTRING (Python 2 str, read as latin1 like encoding='latin1')
        stack.push(latin1.decode(bytes(uint(4))));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(bytes(uint(1))));
        break;
      case 0x42: // BINBYTES
        stack.push(bytes(uint(4)).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(bytes(uint(1)).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(bytes(uint(8)).slice());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) throw bad('APPEND to something that is not a list');
        list.push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) throw bad('APPENDS to something that is not a list');
        for (const v of items) list.push(v);
        break;
      }
      case 0x29: // EMPTY_TUPLE
        stack.push(new PickleTuple([]));
        break;
      case 0x74: // TUPLE
        stack.push(new PickleTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(new PickleTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push(new PickleTuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(new PickleTuple([pop(), b, c]));
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new PickleDict(false));
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        if (items.length % 2 !== 0) throw bad('DICT with an odd number of items');
        const d = new PickleDict(false);
        for (let i = 0; i < items.length; i += 2) d.map.set(items[i], items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const value = pop();
        const key = pop();
        setItem(top(), key, value);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2 !== 0) throw bad('SETITEMS with an odd number of items');
        const d = top();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i], items[i + 1]);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(new PickleSet());
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof PickleSet)) throw bad('ADDITEMS to something that is not a set');
        s.items.push(...items);
        break;
      }
      case 0x91: {
        // FROZENSET
        const s = new PickleSet();
        s.items.push(...popMark());
        stack.push(s);
        break;
      }
      case 0x71: // BINPUT
        memoPut(uint(1));
        break;
      case 0x72: // LONG_BINPUT
        memoPut(uint(4));
        break;
      case 0x70: {
        // PUT
        const s = line();
        if (!/^\d{1,9}$/.test(s)) throw bad(`PUT "${s.slice(0, 40)}"`);
        memoPut(Number(s));
        break;
      }
      case 0x94: // MEMOIZE
        memoPut(memo.size);
        break;
      case 0x68: // BINGET
        stack.push(memoGet(uint(1)));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memoGet(uint(4)));
        break;
      case 0x67: {
        // GET
        const s = line();
        if (!/^\d{1,9}$/.test(s)) throw bad(`GET "${s.slice(0, 40)}"`);
        stack.push(memoGet(Number(s)));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw bad('STACK_GLOBAL of non-strings');
        stack.push(global(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        const cls = pop();
        if (cls instanceof InertObject) stack.push(call(cls, args));
        else if (cls instanceof PickleGlobal && cls.qualifiedName === 'collections.OrderedDict')
          stack.push(new PickleDict(true));
        else
          throw fail(
            'CKPT_UNSAFE_CALL',
            src,
            at,
            `NEWOBJ of ${cls instanceof PickleGlobal ? `"${cls.qualifiedName}"` : `a value of type ${typeName(cls)}`}`,
          );
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(cls instanceof InertObject)) {
          throw fail(
            'CKPT_UNSAFE_CALL',
            src,
            at,
            `NEWOBJ_EX of ${cls instanceof PickleGlobal ? `"${cls.qualifiedName}"` : `a value of type ${typeName(cls)}`}`,
          );
        }
        stack.push(call(cls, new PickleTuple([args, kwargs])));
        break;
      }
      case 0x62: {
        // BUILD: obj.__setstate__(state) — data only here
        const state = pop();
        const obj = top();
        if (obj instanceof InertObject) obj.state = state;
        else if (obj instanceof PickleDict) obj.attributes = state;
        else if (obj === null || typeof obj !== 'object' || !('parameter' in obj)) {
          throw fail('CKPT_UNSAFE_CALL', src, at, `BUILD on a value of type ${typeName(obj)}`);
        }
        break;
      }
      case 0x51: // BINPERSID
        stack.push(opts.persistentLoad(pop()));
        break;
      case 0x50: // PERSID
        stack.push(opts.persistentLoad(line()));
        break;
      default:
        throw bad(
          `opcode 0x${op.toString(16).padStart(2, '0')} is not supported by the restricted unpickler ` +
            '(INST/OBJ/EXT build arbitrary objects and are never run)',
        );
    }
  }
}
