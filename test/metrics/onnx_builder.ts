// Test helper: writes tiny ONNX models (protobuf wire format by hand) so the ONNX-backed metrics can be run
// against models whose output is known exactly.
import { writeFileSync } from 'node:fs';

function varint(n: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

const tag = (field: number, wire: number): number[] => varint((field << 3) | wire);
const int = (field: number, v: number): number[] => [...tag(field, 0), ...varint(v)];
const bytes = (field: number, b: number[]): number[] => [...tag(field, 2), ...varint(b.length), ...b];
const str = (field: number, s: string): number[] => bytes(field, [...Buffer.from(s, 'utf8')]);

export type Dim = number | string;

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  ints?: Record<string, number[]>;
  int?: Record<string, number>;
}

function valueInfo(name: string, shape: Dim[]): number[] {
  const dims = shape.flatMap((d) => bytes(1, typeof d === 'number' ? int(1, d) : str(2, d)));
  const tensorType = [...int(1, 1 /* FLOAT */), ...bytes(2, dims)];
  return [...str(1, name), ...bytes(2, bytes(1, tensorType))];
}

function node(n: NodeSpec, index: number): number[] {
  const attrs: number[] = [];
  for (const [name, values] of Object.entries(n.ints ?? {})) {
    attrs.push(...bytes(5, [...str(1, name), ...values.flatMap((v) => int(8, v)), ...int(20, 7 /* INTS */)]));
  }
  for (const [name, value] of Object.entries(n.int ?? {})) {
    attrs.push(...bytes(5, [...str(1, name), ...int(3, value), ...int(20, 2 /* INT */)]));
  }
  return [
    ...n.inputs.flatMap((i) => str(1, i)),
    ...n.outputs.flatMap((o) => str(2, o)),
    ...str(3, `n${index}`),
    ...str(4, n.op),
    ...attrs,
  ];
}

/** Writes an opset-9 float model with the given graph to `path`. */
export function writeOnnxModel(
  path: string,
  spec: { inputs: [string, Dim[]][]; outputs: [string, Dim[]][]; nodes: NodeSpec[] },
): void {
  const graph = [
    ...spec.nodes.flatMap((n, i) => bytes(1, node(n, i))),
    ...str(2, 'test'),
    ...spec.inputs.flatMap(([name, shape]) => bytes(11, valueInfo(name, shape))),
    ...spec.outputs.flatMap(([name, shape]) => bytes(12, valueInfo(name, shape))),
  ];
  const model = [
    ...int(1, 4),
    ...str(2, 'kinema-test'),
    ...bytes(7, graph),
    ...bytes(8, [...str(1, ''), ...int(2, 9)]),
  ];
  writeFileSync(path, Uint8Array.from(model));
}
