// Lowers a Program to an ONNX model: one or more ONNX nodes per equation, literals as initializers,
// weights either as graph inputs (training) or as initializers (inference; raw or external data).
import type { Atom, HostData, Program } from '../ir.js';
import { getPrimitive } from '../primitive.js';
import { encodeModel } from './proto.js';
import type { OnnxModel, OnnxTensor, OnnxValueInfo } from './proto.js';
import { SinkImpl, elemTypeOf } from './lower_ctx.js';

export const OPSET = 18;

export interface WeightData {
  readonly data: HostData;
}

export interface EmitOptions {
  /** Weights to bake in as initializers, by program input name. Weights not listed stay graph inputs. */
  readonly initializers?: ReadonlyMap<string, HostData>;
  /** Put each initializer's bytes in this external file instead of the protobuf (for > 2 GB models). */
  readonly externalDataFile?: { location: string; write: (bytes: Uint8Array) => number };
  /** Use ONNX Runtime's fused attention kernel (default true; the webgpu provider's is wrong, see runtime.ts). */
  readonly fusedAttention?: boolean;
}

function hostBytes(data: HostData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function atomName(a: Atom): string {
  return a.kind === 'lit' ? `lit${a.id}` : `v${a.id}`;
}

export function lowerProgram(program: Program, opts: EmitOptions = {}): OnnxModel {
  const sink = new SinkImpl();
  const target = { fusedAttention: opts.fusedAttention ?? true };
  const names = new Map<number, string>();
  const inputs: OnnxValueInfo[] = [];
  const initializers: OnnxTensor[] = [];
  const tensor = (name: string, a: Atom, data: HostData): OnnxTensor => {
    const bytes = hostBytes(data);
    if (opts.externalDataFile && bytes.length >= 1024) {
      const offset = opts.externalDataFile.write(bytes);
      return {
        name,
        elemType: elemTypeOf(a.dtype),
        dims: a.shape,
        external: { location: opts.externalDataFile.location, offset, length: bytes.length },
      };
    }
    return { name, elemType: elemTypeOf(a.dtype), dims: a.shape, raw: bytes };
  };
  for (const inp of program.inputs) {
    names.set(inp.v.id, inp.name);
    const baked = inp.role === 'weight' ? opts.initializers?.get(inp.name) : undefined;
    if (baked) initializers.push(tensor(inp.name, inp.v, baked));
    else inputs.push({ name: inp.name, elemType: elemTypeOf(inp.v.dtype), dims: inp.v.shape });
  }
  // Name each equation result that is a program output by the output's name (no Identity copy), when it is
  // produced by an equation and named only once.
  const outCount = new Map<number, number>();
  for (const o of program.outputs) outCount.set(o.atom.id, (outCount.get(o.atom.id) ?? 0) + 1);
  const produced = new Set(program.eqns.flatMap((e) => e.outputs.map((v) => v.id)));
  for (const o of program.outputs) {
    const clash = program.inputs.some((i) => i.name === o.name);
    if (o.atom.kind === 'var' && !clash && produced.has(o.atom.id) && outCount.get(o.atom.id) === 1)
      names.set(o.atom.id, o.name);
  }
  const nameOf = (a: Atom): string => {
    const known = names.get(a.id);
    if (known !== undefined) return known;
    const name = atomName(a);
    if (a.kind === 'lit') initializers.push(tensor(name, a, a.data));
    names.set(a.id, name);
    return name;
  };
  for (const eqn of program.eqns) {
    const def = getPrimitive(eqn.prim);
    def.lower({
      inputs: eqn.inputs.map(nameOf),
      inputAtoms: eqn.inputs,
      outputs: eqn.outputs.map(nameOf),
      outputAvals: eqn.outputs,
      params: eqn.params,
      sink,
      target,
    });
  }
  const outputs: OnnxValueInfo[] = program.outputs.map((o) => {
    if (nameOf(o.atom) !== o.name) sink.node('Identity', [nameOf(o.atom)], [o.name]);
    return { name: o.name, elemType: elemTypeOf(o.atom.dtype), dims: o.atom.shape };
  });
  return {
    nodes: sink.nodes,
    initializers: [...initializers, ...sink.initializers],
    inputs,
    outputs,
    opsets: [
      { domain: '', version: OPSET },
      { domain: 'com.microsoft', version: 1 },
    ],
  };
}

export function emitOnnx(program: Program, opts: EmitOptions = {}): Uint8Array {
  return encodeModel(lowerProgram(program, opts));
}
