// Host-side helpers for the reference interpreter: float64 views, strides, broadcasting.
import { allocHost, numel } from './ir.js';
import type { DType, HostData, Shape } from './ir.js';
import { bf16ToF32, f16ToF32, f32ToBF16, f32ToF16 } from '../io/half.js';
import { KinemaError } from '../errors.js';

export function strides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i] ?? 1;
  }
  return s;
}

/** Any host array as float64 numbers (16-bit floats decoded from their bits). */
export function toF64(data: HostData, dtype: DType): Float64Array {
  if (dtype === 'float16') return Float64Array.from(f16ToF32(data as Uint16Array));
  if (dtype === 'bfloat16') return Float64Array.from(bf16ToF32(data as Uint16Array));
  if (data instanceof BigInt64Array) return Float64Array.from(data, (x) => Number(x));
  return Float64Array.from(data as ArrayLike<number>);
}

/** Float64 numbers back into a host array of `dtype` (rounding as a cast would). */
export function fromF64(values: Float64Array, dtype: DType): HostData {
  switch (dtype) {
    case 'float16':
      return f32ToF16(Float32Array.from(values));
    case 'bfloat16':
      return f32ToBF16(Float32Array.from(values));
    case 'int64':
      return BigInt64Array.from(values, (x) => BigInt(Math.trunc(x)));
    case 'bool':
      return Uint8Array.from(values, (x) => (x !== 0 ? 1 : 0));
    default: {
      const out = allocHost(dtype, values.length) as Float32Array | Float64Array | Int32Array | Uint8Array;
      if (dtype === 'int32' || dtype === 'uint8')
        for (let i = 0; i < values.length; i++) out[i] = Math.trunc(values[i] ?? 0);
      else out.set(values);
      return out;
    }
  }
}

/** NumPy-style broadcast of two shapes; throws naming both shapes when incompatible. */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1)
      throw new KinemaError('ENGINE_INVALID_GRAPH', `shapes [${a}] and [${b}] do not broadcast`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** For each flat index of `outShape`, the flat index into a (broadcast) input of `inShape`. */
export function broadcastIndex(inShape: Shape, outShape: Shape): Int32Array {
  const n = numel(outShape);
  const idx = new Int32Array(n);
  const r = outShape.length;
  const inStr = strides(inShape);
  const padded = new Array<number>(r).fill(0);
  for (let i = 0; i < inShape.length; i++) {
    padded[r - inShape.length + i] = (inShape[i] ?? 1) === 1 ? 0 : (inStr[i] ?? 0);
  }
  const counter = new Array<number>(r).fill(0);
  let off = 0;
  for (let k = 0; k < n; k++) {
    idx[k] = off;
    for (let d = r - 1; d >= 0; d--) {
      counter[d] = (counter[d] ?? 0) + 1;
      off += padded[d] ?? 0;
      if ((counter[d] ?? 0) < (outShape[d] ?? 1)) break;
      off -= (padded[d] ?? 0) * (outShape[d] ?? 1);
      counter[d] = 0;
    }
  }
  return idx;
}

/** Iterates over all multi-indices of `shape` in row-major order. */
export function* multiIndices(shape: Shape): Generator<number[]> {
  const n = numel(shape);
  const idx = new Array<number>(shape.length).fill(0);
  for (let k = 0; k < n; k++) {
    yield idx;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = (idx[d] ?? 0) + 1;
      if ((idx[d] ?? 0) < (shape[d] ?? 1)) break;
      idx[d] = 0;
    }
  }
}

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    throw new KinemaError('ENGINE_INVALID_GRAPH', `axis ${axis} is out of range for rank ${rank}`);
  return a;
}
