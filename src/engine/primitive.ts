// The primitive table: each primitive declares its shape/dtype rule, its ONNX lowering, its reference
// evaluation and its gradient rule side by side (tinygrad/JAX style). A primitive without a gradient rule is
// non-differentiable (comparisons, casts to int, etc.).
import type { Atom, DType, HostData, Params, Shape } from './ir.js';
import type { Tensor } from './tensor.js';
import type { OnnxNodeSink } from './onnx/lower_ctx.js';
import { KinemaError } from '../errors.js';

export interface AbstractValue {
  readonly shape: Shape;
  readonly dtype: DType;
}

export interface HostValue {
  readonly shape: Shape;
  readonly dtype: DType;
  readonly data: HostData;
}

export interface VjpArgs {
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly cotangents: readonly (Tensor | null)[];
  readonly params: Params;
}

export interface LowerArgs {
  readonly inputs: readonly string[];
  readonly inputAtoms: readonly Atom[];
  readonly outputs: readonly string[];
  readonly outputAvals: readonly AbstractValue[];
  readonly params: Params;
  readonly sink: OnnxNodeSink;
  /** How the target execution provider wants some ops lowered. */
  readonly target: LoweringTarget;
}

export interface LoweringTarget {
  /**
   * Lower attention to ONNX Runtime's fused com.microsoft MultiHeadAttention (default) or to standard
   * MatMul + Softmax + MatMul (for providers whose fused kernel is missing or wrong).
   */
  readonly fusedAttention: boolean;
}

export interface PrimitiveDef {
  readonly name: string;
  /** Shape and dtype of each output; throws a clear error for bad inputs. */
  infer(inputs: readonly AbstractValue[], params: Params): AbstractValue[];
  /** Emits ONNX nodes computing `outputs` from `inputs`. */
  lower(args: LowerArgs): void;
  /** Reference evaluation on host data, in float64 for float dtypes. */
  evaluate(inputs: readonly HostValue[], params: Params, outAvals: readonly AbstractValue[]): HostData[];
  /** Gradient rule: cotangents of the inputs (null = no gradient flows). Absent = not differentiable. */
  vjp?(args: VjpArgs): (Tensor | null)[];
}

const table = new Map<string, PrimitiveDef>();

export function definePrimitive(def: PrimitiveDef): PrimitiveDef {
  if (table.has(def.name))
    throw new KinemaError('ENGINE_INVALID_GRAPH', `primitive '${def.name}' is defined twice`);
  table.set(def.name, def);
  return def;
}

export function getPrimitive(name: string): PrimitiveDef {
  const def = table.get(name);
  if (!def) throw new KinemaError('ENGINE_INVALID_GRAPH', `unknown primitive '${name}'`);
  return def;
}

export function primitiveNames(): string[] {
  return [...table.keys()].sort();
}
