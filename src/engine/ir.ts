// Kinema's graph IR: plain data. A Program is a list of equations over variables with static shapes.
// Four record types, as in JAX's autodidax: Var, Literal (a constant tensor), Eqn, Program.

export type DType = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'bool' | 'uint8';

export type Shape = readonly number[];

export type HostData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Uint16Array;

/** A value flowing through the program: produced by an equation or bound as an input. */
export interface Var {
  readonly kind: 'var';
  readonly id: number;
  readonly shape: Shape;
  readonly dtype: DType;
}

/** A constant tensor baked into the program (scalars, small tables such as sinusoidal frequencies). */
export interface Literal {
  readonly kind: 'lit';
  readonly id: number;
  readonly shape: Shape;
  readonly dtype: DType;
  readonly data: HostData;
}

export type Atom = Var | Literal;

export type ParamValue = number | boolean | string | readonly number[] | DType;
export type Params = Readonly<Record<string, ParamValue>>;

export interface Eqn {
  readonly prim: string;
  readonly inputs: readonly Atom[];
  readonly outputs: readonly Var[];
  readonly params: Params;
}

/** A named graph input. `role` tells the emitter whether it is a runtime input or a weight. */
export interface ProgramInput {
  readonly name: string;
  readonly v: Var;
  readonly role: 'input' | 'weight';
}

export interface ProgramOutput {
  readonly name: string;
  readonly atom: Atom;
}

export interface Program {
  readonly inputs: readonly ProgramInput[];
  readonly eqns: readonly Eqn[];
  readonly outputs: readonly ProgramOutput[];
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeEq(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float16' || dtype === 'bfloat16' || dtype === 'float64';
}

export function fmtShape(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case 'float64':
    case 'int64':
      return 8;
    case 'float32':
    case 'int32':
      return 4;
    case 'float16':
    case 'bfloat16':
      return 2;
    case 'bool':
    case 'uint8':
      return 1;
  }
}

/** Allocates host storage for a dtype (16-bit floats are stored as raw Uint16 bits). */
export function allocHost(dtype: DType, n: number): HostData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'float64':
      return new Float64Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(n);
    case 'bool':
    case 'uint8':
      return new Uint8Array(n);
  }
}
