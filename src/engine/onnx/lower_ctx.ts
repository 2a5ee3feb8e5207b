// What a primitive's ONNX lowering may do: add nodes, make small constant initializers, name temporaries.
import type { DType } from '../ir.js';
import type { OnnxAttrValue, OnnxNode, OnnxTensor } from './proto.js';
import { TensorElemType } from './proto.js';

export interface OnnxNodeSink {
  node(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attrs?: Record<string, OnnxAttrValue>,
    domain?: string,
  ): void;
  /** Name of an int64 1-D initializer holding `values` (deduplicated). */
  constI64(values: readonly number[]): string;
  /** Name of a 0-d initializer of `dtype` holding `value`. */
  constScalar(value: number, dtype: DType): string;
  /** A fresh intermediate value name. */
  temp(hint?: string): string;
}

export const attr = {
  int: (v: number): OnnxAttrValue => ({ kind: 'int', v }),
  float: (v: number): OnnxAttrValue => ({ kind: 'float', v }),
  str: (v: string): OnnxAttrValue => ({ kind: 'string', v }),
  ints: (v: readonly number[]): OnnxAttrValue => ({ kind: 'ints', v }),
  floats: (v: readonly number[]): OnnxAttrValue => ({ kind: 'floats', v }),
};

export function elemTypeOf(dtype: DType): number {
  return TensorElemType[dtype];
}

/** Encodes one scalar of `dtype` as little-endian bytes. */
export function scalarBytes(value: number, dtype: DType): Uint8Array {
  const buf = new ArrayBuffer(8);
  const dv = new DataView(buf);
  switch (dtype) {
    case 'float32':
      dv.setFloat32(0, value, true);
      return new Uint8Array(buf, 0, 4);
    case 'float64':
      dv.setFloat64(0, value, true);
      return new Uint8Array(buf, 0, 8);
    case 'int64':
      dv.setBigInt64(0, BigInt(Math.trunc(value)), true);
      return new Uint8Array(buf, 0, 8);
    case 'int32':
      dv.setInt32(0, value, true);
      return new Uint8Array(buf, 0, 4);
    case 'float16':
    case 'bfloat16': {
      const f32 = new Float32Array([value]);
      const bits = new Uint32Array(f32.buffer)[0] ?? 0;
      dv.setUint16(0, dtype === 'bfloat16' ? bits >>> 16 : f32ToHalfBits(value), true);
      return new Uint8Array(buf, 0, 2);
    }
    case 'bool':
    case 'uint8':
      dv.setUint8(0, value);
      return new Uint8Array(buf, 0, 1);
  }
}

function f32ToHalfBits(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0] ?? 0;
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = x & 0x7fffff;
  if (exp >= 31) return sign | 0x7c00 | (((x >>> 23) & 0xff) === 0xff && mant ? 0x200 : 0);
  if (exp <= 0) return sign;
  return sign | (exp << 10) | (mant >>> 13);
}

export class SinkImpl implements OnnxNodeSink {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];
  private readonly constCache = new Map<string, string>();
  private counter = 0;

  node(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attrs?: Record<string, OnnxAttrValue>,
    domain?: string,
  ): void {
    this.nodes.push({
      opType,
      inputs,
      outputs,
      attrs: attrs ?? {},
      domain: domain ?? '',
      name: `n${this.nodes.length}_${opType}`,
    });
  }
  constI64(values: readonly number[]): string {
    const key = `i64:${values.join(',')}`;
    const known = this.constCache.get(key);
    if (known) return known;
    const name = `c_i64_${this.constCache.size}`;
    const raw = new Uint8Array(new BigInt64Array(values.map((v) => BigInt(v))).buffer);
    this.initializers.push({ name, elemType: TensorElemType.int64, dims: [values.length], raw });
    this.constCache.set(key, name);
    return name;
  }
  constScalar(value: number, dtype: DType): string {
    const key = `s:${dtype}:${Object.is(value, -0) ? '-0' : value}`;
    const known = this.constCache.get(key);
    if (known) return known;
    const name = `c_s_${this.constCache.size}`;
    this.initializers.push({ name, elemType: elemTypeOf(dtype), dims: [], raw: scalarBytes(value, dtype) });
    this.constCache.set(key, name);
    return name;
  }
  temp(hint = 't'): string {
    return `${hint}_${this.counter++}`;
  }
}
