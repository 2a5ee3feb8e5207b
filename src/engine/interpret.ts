// The reference interpreter: evaluates a Program on host data with each primitive's float64 `evaluate`.
// ONNX execution is tested against it.
import type { Atom, HostData, Program } from './ir.js';
import { getPrimitive } from './primitive.js';
import type { HostValue } from './primitive.js';
import type { HostTensor } from './runtime.js';
import { KinemaError } from '../errors.js';

export function interpret(
  program: Program,
  feeds: Readonly<Record<string, HostTensor>>,
): Record<string, HostTensor> {
  const env = new Map<number, HostValue>();
  for (const inp of program.inputs) {
    const t = feeds[inp.name];
    if (!t) throw new KinemaError('ENGINE_INVALID_GRAPH', `interpret: missing input '${inp.name}'`);
    if (t.shape.join() !== inp.v.shape.join())
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        `interpret: input '${inp.name}' has shape [${t.shape}], expected [${inp.v.shape}]`,
      );
    env.set(inp.v.id, { shape: inp.v.shape, dtype: inp.v.dtype, data: t.data });
  }
  const read = (a: Atom): HostValue => {
    if (a.kind === 'lit') return { shape: a.shape, dtype: a.dtype, data: a.data };
    const v = env.get(a.id);
    if (!v)
      throw new KinemaError('ENGINE_INVALID_GRAPH', `interpret: variable v${a.id} used before it is defined`);
    return v;
  };
  for (const eqn of program.eqns) {
    const outs: HostData[] = getPrimitive(eqn.prim).evaluate(eqn.inputs.map(read), eqn.params, eqn.outputs);
    eqn.outputs.forEach((o, i) => env.set(o.id, { shape: o.shape, dtype: o.dtype, data: outs[i]! }));
  }
  const result: Record<string, HostTensor> = {};
  for (const o of program.outputs) {
    const v = read(o.atom);
    result[o.name] = { shape: v.shape, dtype: v.dtype, data: v.data };
  }
  return result;
}
