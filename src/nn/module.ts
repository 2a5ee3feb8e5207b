// Module: a tree of named sub-modules and parameter declarations. Parameter names are the dotted paths
// PyTorch's state_dict uses (`down_blocks.0.resnets.1.conv1.weight`), so checkpoints load by their own keys.
// A module only declares shapes; values live in a StateDict and are bound at compile time.
import type { Shape } from '../engine/ir.js';
import { numel } from '../engine/ir.js';
import { Tensor, currentBuilder } from '../engine/tensor.js';
import { Generator } from '../engine/random.js';
import { KinemaError } from '../errors.js';

export type StateDict = Map<string, Float32Array>;

export type Init =
  { kind: 'zeros' } | { kind: 'ones' } | { kind: 'normal'; std: number } | { kind: 'uniform'; bound: number };

export interface ParamSpec {
  readonly shape: Shape;
  readonly init: Init;
}

/** Weights do not match a module's parameters (missing, unexpected or mis-shaped keys). */
export class StateDictError extends KinemaError {
  constructor(message: string) {
    super('STATE_DICT_MISMATCH', message);
    this.name = 'StateDictError';
  }
}

export class Module {
  private parent: Module | null = null;
  private nameInParent = '';
  private readonly localParams = new Map<string, ParamSpec>();
  private readonly children = new Map<string, Module>();

  /** Declares a parameter and returns a function that yields it as a traced tensor. */
  protected declare(name: string, shape: Shape, init: Init): void {
    if (this.localParams.has(name) || this.children.has(name))
      throw new KinemaError('NN_INVALID_MODULE', `'${name}' is declared twice in ${this.constructor.name}`);
    this.localParams.set(name, { shape: [...shape], init });
  }

  /** Registers a sub-module under `name` (its parameters get the `name.` prefix). */
  protected child<M extends Module>(name: string, m: M): M {
    if (this.children.has(name) || this.localParams.has(name))
      throw new KinemaError('NN_INVALID_MODULE', `'${name}' is registered twice in ${this.constructor.name}`);
    m.parent = this;
    m.nameInParent = name;
    this.children.set(name, m);
    return m;
  }

  /** Full dotted path of this module from the root ('' for the root). */
  get path(): string {
    if (!this.parent) return '';
    const p = this.parent.path;
    return p ? `${p}.${this.nameInParent}` : this.nameInParent;
  }

  /** The parameter `name` as a traced tensor (a weight input of the program being traced). */
  protected p(name: string): Tensor {
    const spec = this.localParams.get(name);
    if (!spec)
      throw new KinemaError('NN_INVALID_MODULE', `${this.constructor.name} has no parameter '${name}'`);
    const full = this.path ? `${this.path}.${name}` : name;
    return new Tensor(currentBuilder().weight(full, spec.shape, 'float32'));
  }

  protected hasParam(name: string): boolean {
    return this.localParams.has(name);
  }

  /** All parameters below this module, by full name relative to this module. */
  namedParameters(prefix = ''): Map<string, ParamSpec> {
    const out = new Map<string, ParamSpec>();
    for (const [n, s] of this.localParams) out.set(prefix + n, s);
    for (const [n, c] of this.children)
      for (const [k, s] of c.namedParameters(`${prefix}${n}.`)) out.set(k, s);
    return out;
  }

  /** Every sub-module below this one (depth first) by dotted path relative to this module, this one as ''. */
  namedModules(prefix = ''): Map<string, Module> {
    const out = new Map<string, Module>([[prefix.replace(/\.$/, ''), this]]);
    for (const [n, c] of this.children) for (const [k, m] of c.namedModules(`${prefix}${n}.`)) out.set(k, m);
    return out;
  }

  /** The sub-module at a dotted path (torch's get_submodule); a path that names none is an error. */
  getSubmodule(path: string): Module {
    let m: Module = this;
    for (const part of path === '' ? [] : path.split('.')) {
      const next = m.children.get(part);
      if (!next)
        throw new KinemaError('NN_INVALID_MODULE', `${this.constructor.name} has no sub-module '${path}'`);
      m = next;
    }
    return m;
  }

  parameterCount(): number {
    let n = 0;
    for (const s of this.namedParameters().values()) n += numel(s.shape);
    return n;
  }

  /** Fresh parameter values from each declaration's initializer (seeded). */
  initParameters(seed = 0): StateDict {
    const rng = new Generator(seed);
    const sd: StateDict = new Map();
    for (const [name, spec] of this.namedParameters()) sd.set(name, initValues(spec, rng));
    return sd;
  }

  /** Checks a state dict against the declarations: missing, unexpected and mis-shaped keys are errors. */
  validateStateDict(
    sd: ReadonlyMap<string, { shape: Shape } | Float32Array>,
    opts: { strict?: boolean; shapes?: ReadonlyMap<string, Shape> } = {},
  ): void {
    const specs = this.namedParameters();
    const missing = [...specs.keys()].filter((k) => !sd.has(k));
    const unexpected = [...sd.keys()].filter((k) => !specs.has(k));
    const problems: string[] = [];
    if (missing.length > 0)
      problems.push(
        `missing keys: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ` (+${missing.length - 10} more)` : ''}`,
      );
    if ((opts.strict ?? true) && unexpected.length > 0) {
      problems.push(
        `unexpected keys: ${unexpected.slice(0, 10).join(', ')}${unexpected.length > 10 ? ` (+${unexpected.length - 10} more)` : ''}`,
      );
    }
    for (const [k, spec] of specs) {
      const v = sd.get(k);
      if (!v) continue;
      const shape = v instanceof Float32Array ? (opts.shapes?.get(k) ?? null) : v.shape;
      const n = v instanceof Float32Array ? v.length : numel(v.shape);
      if (shape ? shape.join() !== spec.shape.join() : n !== numel(spec.shape)) {
        problems.push(
          `shape mismatch for '${k}': checkpoint has [${shape ?? `${n} values`}], model expects [${spec.shape}]`,
        );
      }
    }
    if (problems.length > 0)
      throw new StateDictError(`state dict does not match ${this.constructor.name}: ${problems.join('; ')}`);
  }
}

function initValues(spec: ParamSpec, rng: Generator): Float32Array {
  const n = numel(spec.shape);
  switch (spec.init.kind) {
    case 'zeros':
      return new Float32Array(n);
    case 'ones':
      return new Float32Array(n).fill(1);
    case 'normal': {
      const v = rng.normal(n);
      for (let i = 0; i < n; i++) v[i]! *= spec.init.std;
      return v;
    }
    case 'uniform': {
      const v = rng.uniform(n);
      const b = spec.init.bound;
      for (let i = 0; i < n; i++) v[i] = (v[i]! * 2 - 1) * b;
      return v;
    }
  }
}

/** A list of modules named '0', '1', … like torch.nn.ModuleList. */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items.map((m, i) => this.child(String(i), m));
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    const m = this.items[i];
    if (!m)
      throw new KinemaError('NN_INVALID_MODULE', `ModuleList index ${i} out of range (${this.items.length})`);
    return m;
  }
}
