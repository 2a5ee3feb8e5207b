// Values built by the restricted unpickler (torch_pickle.ts) and its allow-list: the few module-level names a
// PyTorch state dict needs, anchored on torch/_weights_only_unpickler.py, with each "call" re-implemented here as
// plain data construction (nothing is imported, nothing from the file is run).
import type { KinemaError } from '../errors.js';

export class PickleTuple {
  constructor(readonly items: unknown[]) {}
}

/** dict / OrderedDict. Keys are kept as JS values; strings and numbers compare by value. */
export class PickleDict {
  readonly map = new Map<unknown, unknown>();
  /** Attributes set by BUILD (OrderedDict state dicts carry `_metadata` this way). */
  attributes: unknown = undefined;
  constructor(readonly ordered: boolean) {}
}

export class PickleSet {
  readonly items: unknown[] = [];
}

/** A reference to an allow-listed module-level name (a class or function), as GLOBAL produced it. */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An unknown global or an object built from one, kept only as data (with `inertUnknown`). Never called. */
export class InertObject {
  args: unknown = undefined;
  state: unknown = undefined;
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** The arguments of `torch._utils._rebuild_tensor(_v2)`, validated. */
export interface TensorRebuild {
  storage: unknown;
  storageOffset: number;
  size: number[];
  stride: number[];
  requiresGrad: boolean;
  parameter: boolean;
}

/** What an allow-listed call needs from the unpickler: its error constructors and the tensor builder. */
export interface CallContext {
  bad: (message: string) => KinemaError;
  unsafe: (message: string) => KinemaError;
  rebuildTensor: (spec: TensorRebuild) => unknown;
}

/** Storage classes PyTorch pickles as the type in a storage's persistent id. */
export const STORAGE_TYPES = new Set([
  'FloatStorage',
  'HalfStorage',
  'BFloat16Storage',
  'DoubleStorage',
  'LongStorage',
  'IntStorage',
  'ShortStorage',
  'CharStorage',
  'ByteStorage',
  'BoolStorage',
  'ComplexFloatStorage',
  'ComplexDoubleStorage',
  'QInt8Storage',
  'QUInt8Storage',
  'QInt32Storage',
]);

const TORCH_DTYPES = new Set([
  'float32',
  'float16',
  'bfloat16',
  'float64',
  'int64',
  'int32',
  'int16',
  'int8',
  'uint8',
  'bool',
]);

/** The allow-list: `module.name` of every global this unpickler accepts (a subset of weights_only's). */
export function isAllowedGlobal(module: string, name: string): boolean {
  switch (module) {
    case 'collections':
      return name === 'OrderedDict';
    case 'torch._utils':
      return (
        name === '_rebuild_tensor' ||
        name === '_rebuild_tensor_v2' ||
        name === '_rebuild_parameter' ||
        name === '_rebuild_parameter_with_state'
      );
    case 'torch._tensor':
      return name === '_rebuild_from_type_v2';
    case 'torch.nn.parameter':
      return name === 'Parameter';
    case 'torch':
      return name === 'Tensor' || name === 'Size' || STORAGE_TYPES.has(name) || TORCH_DTYPES.has(name);
    case '_codecs':
      return name === 'encode';
    case 'builtins':
    case '__builtin__':
      return name === 'set' || name === 'frozenset';
    default:
      return false;
  }
}

export function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** REDUCE of an allow-listed global (or of an inert placeholder, which only records its arguments). */
export function callAllowed(fn: unknown, args: unknown, ctx: CallContext): unknown {
  const { bad, unsafe } = ctx;
  const call = (f: unknown, x: unknown): unknown => callAllowed(f, x, ctx);
  if (fn instanceof InertObject) {
    const obj = new InertObject(fn.module, fn.name);
    obj.args = args;
    return obj;
  }
  const what = fn instanceof PickleGlobal ? `"${fn.qualifiedName}"` : `a value of type ${typeName(fn)}`;
  if (!(fn instanceof PickleGlobal)) {
    throw unsafe(`REDUCE on ${what}, which is not an allow-listed callable`);
  }
  if (!(args instanceof PickleTuple)) throw bad(`arguments of ${what} are not a tuple`);
  const a = args.items;
  switch (fn.qualifiedName) {
    case 'collections.OrderedDict': {
      const d = new PickleDict(true);
      if (a.length > 0) {
        const pairs = a[0];
        if (!Array.isArray(pairs)) throw bad('OrderedDict(...) argument is not a list of pairs');
        for (const p of pairs) {
          if (!(p instanceof PickleTuple) || p.items.length !== 2)
            throw bad('OrderedDict(...) item is not a pair');
          d.map.set(p.items[0], p.items[1]);
        }
      }
      return d;
    }
    case 'torch._utils._rebuild_tensor':
    case 'torch._utils._rebuild_tensor_v2':
      return rebuildTensor(a, fn.name === '_rebuild_tensor_v2', ctx);
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state':
      return asParameter(a[0], ctx);
    case 'torch._tensor._rebuild_from_type_v2': {
      // (func, new_type, args, state): a tensor subclass; only Tensor and Parameter are accepted.
      const [func, newType, inner] = a;
      if (
        !(newType instanceof PickleGlobal) ||
        !['torch.Tensor', 'torch.nn.parameter.Parameter'].includes(newType.qualifiedName)
      ) {
        throw unsafe('_rebuild_from_type_v2 to a type other than Tensor/Parameter');
      }
      const t = call(func, inner);
      return newType.name === 'Parameter' ? asParameter(t, ctx) : t;
    }
    case 'torch.Size': {
      const dims = a[0];
      if (!(dims instanceof PickleTuple)) throw bad('torch.Size(...) argument is not a tuple');
      return dims;
    }
    case '_codecs.encode': {
      const [text, encoding] = a;
      if (typeof text !== 'string') throw bad('_codecs.encode(...) of a non-string');
      if (encoding !== 'latin1' && encoding !== 'latin-1')
        throw bad(`_codecs.encode(..., ${String(encoding)})`);
      const out = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c > 255) throw bad('_codecs.encode: character outside latin1');
        out[i] = c;
      }
      return out;
    }
    case 'builtins.set':
    case 'builtins.frozenset':
    case '__builtin__.set':
    case '__builtin__.frozenset': {
      const s = new PickleSet();
      const items = a[0];
      if (items !== undefined) {
        if (!Array.isArray(items) && !(items instanceof PickleTuple)) throw bad('set(...) of a non-sequence');
        s.items.push(...(Array.isArray(items) ? items : items.items));
      }
      return s;
    }
    default:
      throw unsafe(`REDUCE on ${what}, which is allow-listed as a type, not as a callable`);
  }
}

function rebuildTensor(a: unknown[], v2: boolean, ctx: CallContext): unknown {
  const { bad } = ctx;
  const [storage, storageOffset, size, stride, requiresGrad] = a;
  if (!isNonNegInt(storageOffset))
    throw bad(`tensor storage offset ${String(storageOffset)} is not a non-negative integer`);
  if (!(size instanceof PickleTuple) || !size.items.every(isNonNegInt))
    throw bad('tensor size is not a tuple of non-negative integers');
  if (!(stride instanceof PickleTuple) || !stride.items.every(isNonNegInt)) {
    throw bad('tensor stride is not a tuple of non-negative integers');
  }
  if (size.items.length !== stride.items.length) {
    throw bad(`tensor size has ${size.items.length} dims but stride has ${stride.items.length}`);
  }
  if (v2 && a.length < 6) throw bad('_rebuild_tensor_v2 with fewer than 6 arguments');
  return ctx.rebuildTensor({
    storage,
    storageOffset,
    size: size.items as number[],
    stride: stride.items as number[],
    requiresGrad: requiresGrad === true,
    parameter: false,
  });
}

function asParameter(t: unknown, ctx: CallContext): unknown {
  const { bad } = ctx;
  if (t === null || typeof t !== 'object' || !('parameter' in t))
    throw bad('Parameter of something that is not a tensor');
  (t as { parameter: boolean }).parameter = true;
  return t;
}

export function typeName(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'list';
  if (v instanceof PickleTuple) return 'tuple';
  if (v instanceof PickleDict) return v.ordered ? 'OrderedDict' : 'dict';
  if (v instanceof PickleSet) return 'set';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof PickleGlobal) return `global ${v.qualifiedName}`;
  if (v instanceof InertObject) return `inert ${v.qualifiedName}`;
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v;
}
