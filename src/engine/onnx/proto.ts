// A small protobuf writer for the subset of onnx.proto that Kinema emits (ModelProto, GraphProto, NodeProto,
// AttributeProto, TensorProto with raw or external data, ValueInfoProto). Field numbers follow onnx.proto3.

class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(256);
  private pos = 0;
  length = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.flush();
    if (n > this.cur.length) this.cur = new Uint8Array(Math.max(n, 256));
  }
  private flush(): void {
    if (this.pos > 0) this.chunks.push(this.cur.subarray(0, this.pos));
    this.cur = new Uint8Array(this.cur.length);
    this.pos = 0;
  }
  varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    do {
      let byte = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) byte |= 0x80;
      this.cur[this.pos++] = byte;
      this.length++;
    } while (x !== 0n);
  }
  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }
  bytes(data: Uint8Array): void {
    this.varint(data.length);
    if (data.length > 4096) {
      this.flush();
      this.chunks.push(data);
      this.length += data.length;
      return;
    }
    this.ensure(data.length);
    this.cur.set(data, this.pos);
    this.pos += data.length;
    this.length += data.length;
  }
  float32(v: number): void {
    this.ensure(4);
    new DataView(this.cur.buffer, this.cur.byteOffset).setFloat32(this.pos, v, true);
    this.pos += 4;
    this.length += 4;
  }
  finish(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.length);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }
}

const enc = new TextEncoder();
type Msg = (w: ProtoWriter) => void;

function fieldVarint(w: ProtoWriter, f: number, v: number | bigint): void {
  w.tag(f, 0);
  w.varint(v);
}
function fieldString(w: ProtoWriter, f: number, s: string): void {
  w.tag(f, 2);
  w.bytes(enc.encode(s));
}
function fieldBytes(w: ProtoWriter, f: number, b: Uint8Array): void {
  w.tag(f, 2);
  w.bytes(b);
}
function fieldMsg(w: ProtoWriter, f: number, m: Msg): void {
  const inner = new ProtoWriter();
  m(inner);
  fieldBytes(w, f, inner.finish());
}

export const TensorElemType = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  bfloat16: 16,
} as const;

export interface OnnxTensor {
  name: string;
  elemType: number;
  dims: readonly number[];
  raw?: Uint8Array;
  external?: { location: string; offset: number; length: number };
}

export type OnnxAttrValue =
  | { kind: 'int'; v: number }
  | { kind: 'float'; v: number }
  | { kind: 'string'; v: string }
  | { kind: 'ints'; v: readonly number[] }
  | { kind: 'floats'; v: readonly number[] }
  | { kind: 'tensor'; v: OnnxTensor };

export interface OnnxNode {
  opType: string;
  domain?: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  attrs?: Readonly<Record<string, OnnxAttrValue>>;
}

export interface OnnxValueInfo {
  name: string;
  elemType: number;
  dims: readonly number[];
}

export interface OnnxModel {
  nodes: readonly OnnxNode[];
  initializers: readonly OnnxTensor[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  opsets: ReadonlyArray<{ domain: string; version: number }>;
  graphName?: string;
}

function writeTensor(w: ProtoWriter, t: OnnxTensor): void {
  for (const d of t.dims) fieldVarint(w, 1, d);
  fieldVarint(w, 2, t.elemType);
  fieldString(w, 8, t.name);
  if (t.raw) fieldBytes(w, 9, t.raw);
  if (t.external) {
    const entries: Array<[string, string]> = [
      ['location', t.external.location],
      ['offset', String(t.external.offset)],
      ['length', String(t.external.length)],
    ];
    for (const [k, v] of entries) {
      fieldMsg(w, 13, (m) => {
        fieldString(m, 1, k);
        fieldString(m, 2, v);
      });
    }
    fieldVarint(w, 14, 1); // data_location = EXTERNAL
  }
}

function writeAttr(w: ProtoWriter, name: string, a: OnnxAttrValue): void {
  fieldString(w, 1, name);
  switch (a.kind) {
    case 'float':
      w.tag(2, 5);
      w.float32(a.v);
      fieldVarint(w, 20, 1);
      break;
    case 'int':
      fieldVarint(w, 3, a.v);
      fieldVarint(w, 20, 2);
      break;
    case 'string':
      fieldBytes(w, 4, enc.encode(a.v));
      fieldVarint(w, 20, 3);
      break;
    case 'tensor':
      fieldMsg(w, 5, (m) => writeTensor(m, a.v));
      fieldVarint(w, 20, 4);
      break;
    case 'floats':
      for (const f of a.v) {
        w.tag(7, 5);
        w.float32(f);
      }
      fieldVarint(w, 20, 6);
      break;
    case 'ints':
      for (const i of a.v) fieldVarint(w, 8, i);
      fieldVarint(w, 20, 7);
      break;
  }
}

function writeNode(w: ProtoWriter, n: OnnxNode): void {
  for (const i of n.inputs) fieldString(w, 1, i);
  for (const o of n.outputs) fieldString(w, 2, o);
  if (n.name) fieldString(w, 3, n.name);
  fieldString(w, 4, n.opType);
  for (const [k, a] of Object.entries(n.attrs ?? {})) fieldMsg(w, 5, (m) => writeAttr(m, k, a));
  if (n.domain) fieldString(w, 7, n.domain);
}

function writeValueInfo(w: ProtoWriter, v: OnnxValueInfo): void {
  fieldString(w, 1, v.name);
  fieldMsg(w, 2, (type) =>
    fieldMsg(type, 1, (tt) => {
      fieldVarint(tt, 1, v.elemType);
      fieldMsg(tt, 2, (shape) => {
        for (const d of v.dims) fieldMsg(shape, 1, (dim) => fieldVarint(dim, 1, d));
      });
    }),
  );
}

/** Serializes a model to ONNX protobuf bytes (ir_version 9). */
export function encodeModel(model: OnnxModel): Uint8Array {
  const w = new ProtoWriter();
  fieldVarint(w, 1, 9);
  fieldString(w, 2, 'kinema');
  fieldString(w, 3, '0.1.0');
  fieldMsg(w, 7, (g) => {
    for (const n of model.nodes) fieldMsg(g, 1, (m) => writeNode(m, n));
    fieldString(g, 2, model.graphName ?? 'kinema_graph');
    for (const t of model.initializers) fieldMsg(g, 5, (m) => writeTensor(m, t));
    for (const i of model.inputs) fieldMsg(g, 11, (m) => writeValueInfo(m, i));
    for (const o of model.outputs) fieldMsg(g, 12, (m) => writeValueInfo(m, o));
  });
  for (const o of model.opsets) {
    fieldMsg(w, 8, (m) => {
      if (o.domain) fieldString(m, 1, o.domain);
      fieldVarint(m, 2, o.version);
    });
  }
  return w.finish();
}
