// Tracing: symbolic tensors record equations into the current Builder. Model code is ordinary TypeScript
// calling ops on Tensors; `trace(fn, specs)` turns it into a Program.
import { allocHost, numel } from './ir.js';
import type {
  Atom,
  DType,
  Eqn,
  HostData,
  Literal,
  Params,
  Program,
  ProgramInput,
  ProgramOutput,
  Shape,
  Var,
} from './ir.js';
import { getPrimitive } from './primitive.js';
import { KinemaError } from '../errors.js';

export class Builder {
  private nextId = 0;
  readonly eqns: Eqn[] = [];
  readonly inputs: ProgramInput[] = [];
  private readonly weightVars = new Map<string, Var>();

  newVar(shape: Shape, dtype: DType): Var {
    return { kind: 'var', id: this.nextId++, shape: [...shape], dtype };
  }

  literal(data: HostData, shape: Shape, dtype: DType): Literal {
    if (data.length !== numel(shape))
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        `literal of shape [${shape}] needs ${numel(shape)} values`,
      );
    return { kind: 'lit', id: this.nextId++, shape: [...shape], dtype, data };
  }

  addInput(name: string, shape: Shape, dtype: DType, role: 'input' | 'weight'): Var {
    if (this.inputs.some((i) => i.name === name))
      throw new KinemaError('ENGINE_INVALID_GRAPH', `duplicate program input '${name}'`);
    const v = this.newVar(shape, dtype);
    this.inputs.push({ name, v, role });
    return v;
  }

  /** A named weight: the same name always maps to the same input variable. */
  weight(name: string, shape: Shape, dtype: DType): Var {
    const known = this.weightVars.get(name);
    if (known) {
      if (known.shape.join() !== shape.join() || known.dtype !== dtype) {
        throw new KinemaError(
          'ENGINE_INVALID_GRAPH',
          `weight '${name}' used with two different shapes/dtypes`,
        );
      }
      return known;
    }
    const v = this.addInput(name, shape, dtype, 'weight');
    this.weightVars.set(name, v);
    return v;
  }

  build(outputs: ProgramOutput[]): Program {
    return { inputs: [...this.inputs], eqns: [...this.eqns], outputs };
  }
}

const stack: Builder[] = [];

export function currentBuilder(): Builder {
  const b = stack[stack.length - 1];
  if (!b)
    throw new KinemaError(
      'ENGINE_INVALID_GRAPH',
      'no active trace: tensor ops must run inside trace() or a traced function',
    );
  return b;
}

export function withBuilder<T>(b: Builder, fn: () => T): T {
  stack.push(b);
  try {
    return fn();
  } finally {
    stack.pop();
  }
}

/** A symbolic tensor: a handle on an IR atom with a known shape and dtype. */
export class Tensor {
  constructor(readonly atom: Atom) {}
  get shape(): Shape {
    return this.atom.shape;
  }
  get dtype(): DType {
    return this.atom.dtype;
  }
  get rank(): number {
    return this.atom.shape.length;
  }
  get size(): number {
    return numel(this.atom.shape);
  }
  toString(): string {
    return `Tensor(${this.dtype}[${this.shape.join(',')}])`;
  }
}

/** Records one equation and returns its output tensors. */
export function bind(prim: string, inputs: readonly Tensor[], params: Params = {}): Tensor[] {
  const b = currentBuilder();
  const def = getPrimitive(prim);
  const avals = def.infer(
    inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })),
    params,
  );
  const outs = avals.map((a) => b.newVar(a.shape, a.dtype));
  b.eqns.push({ prim, inputs: inputs.map((t) => t.atom), outputs: outs, params });
  return outs.map((v) => new Tensor(v));
}

export function bind1(prim: string, inputs: readonly Tensor[], params: Params = {}): Tensor {
  const out = bind(prim, inputs, params)[0];
  if (!out) throw new KinemaError('ENGINE_INVALID_GRAPH', `primitive '${prim}' produced no output`);
  return out;
}

export function constant(data: HostData | number[], shape: Shape, dtype: DType = 'float32'): Tensor {
  const b = currentBuilder();
  let host: HostData;
  if (Array.isArray(data)) {
    host = allocHost(dtype, data.length);
    if (host instanceof BigInt64Array) data.forEach((x, i) => ((host as BigInt64Array)[i] = BigInt(x)));
    else data.forEach((x, i) => ((host as Exclude<HostData, BigInt64Array>)[i] = x));
  } else host = data;
  return new Tensor(b.literal(host, shape, dtype));
}

export function scalar(value: number, dtype: DType): Tensor {
  return constant([value], [], dtype);
}

export interface InputSpec {
  readonly name: string;
  readonly shape: Shape;
  readonly dtype?: DType;
}

/** Traces `fn` over fresh inputs and returns its program. Outputs are named by `outputNames` or out0, out1… */
export function trace(
  fn: (...args: Tensor[]) => Tensor | Tensor[] | Record<string, Tensor>,
  specs: readonly InputSpec[],
): Program {
  const b = new Builder();
  return withBuilder(b, () => {
    const args = specs.map((s) => new Tensor(b.addInput(s.name, s.shape, s.dtype ?? 'float32', 'input')));
    const result = fn(...args);
    return b.build(namedOutputs(result));
  });
}

export function namedOutputs(result: Tensor | Tensor[] | Record<string, Tensor>): ProgramOutput[] {
  if (result instanceof Tensor) return [{ name: 'out0', atom: result.atom }];
  if (Array.isArray(result)) return result.map((t, i) => ({ name: `out${i}`, atom: t.atom }));
  return Object.entries(result).map(([name, t]) => ({ name, atom: t.atom }));
}
