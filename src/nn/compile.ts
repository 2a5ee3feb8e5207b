// Trace a model function and compile it with weights bound from a state dict (cached per weight set).
import type { HostData, Program } from '../engine/ir.js';
import { numel } from '../engine/ir.js';
import { trace } from '../engine/tensor.js';
import type { InputSpec, Tensor } from '../engine/tensor.js';
import { compile } from '../engine/runtime.js';
import type { ExecutionProvider, Executable } from '../engine/runtime.js';
import type { StateDict } from './module.js';
import { KinemaError } from '../errors.js';

const weightIds = new WeakMap<object, number>();
let nextWeightId = 0;
function weightsKey(sd: object): string {
  let id = weightIds.get(sd);
  if (id === undefined) {
    id = nextWeightId++;
    weightIds.set(sd, id);
  }
  return `w${id}`;
}

/** Binds every weight input of `program` to its value in `sd` (errors name any missing or mis-sized key). */
export function bindWeights(program: Program, sd: StateDict): Map<string, HostData> {
  const init = new Map<string, HostData>();
  for (const inp of program.inputs) {
    if (inp.role !== 'weight') continue;
    const v = sd.get(inp.name);
    if (!v) throw new KinemaError('ENGINE_BAD_FEED', `no value for parameter '${inp.name}'`);
    if (v.length !== numel(inp.v.shape))
      throw new KinemaError(
        'ENGINE_BAD_FEED',
        `parameter '${inp.name}' has ${v.length} values, expected [${inp.v.shape}]`,
      );
    init.set(inp.name, v);
  }
  return init;
}

export interface CompiledFunction {
  readonly program: Program;
  readonly exe: Executable;
}

export async function compileWithWeights(
  fn: (...args: Tensor[]) => Tensor | Tensor[] | Record<string, Tensor>,
  specs: readonly InputSpec[],
  sd: StateDict,
  opts: { ep?: ExecutionProvider; threads?: number } = {},
): Promise<CompiledFunction> {
  const program = trace(fn, specs);
  const exe = await compile(program, {
    ...opts,
    initializers: bindWeights(program, sd),
    weightsKey: weightsKey(sd),
  });
  return { program, exe };
}
