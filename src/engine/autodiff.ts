// Reverse-mode autodiff as a program transform: trace the function, then walk its equations backwards,
// applying each primitive's gradient rule, into the same builder. The result is one forward+backward
// Program that runs as a single ONNX Runtime session.
import type { Program, ProgramOutput, Var } from './ir.js';
import { getPrimitive } from './primitive.js';
import { Builder, Tensor, withBuilder } from './tensor.js';
import type { InputSpec } from './tensor.js';
import * as op from './ops.js';
import { KinemaError } from '../errors.js';

export interface ValueAndGradOptions {
  /** Names of the program inputs (or weights) to differentiate with respect to; default: every weight. */
  readonly wrt?: readonly string[];
  /** Extra named outputs to keep (for logging), computed by the same forward pass. */
  readonly aux?: (outputs: Record<string, Tensor>) => Record<string, Tensor>;
}

/** Adds gradient equations for `loss` (a scalar) with respect to `wrt` vars into the current builder. */
export function backward(b: Builder, loss: Tensor, wrt: readonly Var[]): Map<number, Tensor> {
  if (loss.size !== 1)
    throw new KinemaError('ENGINE_INVALID_GRAPH', `loss must be a scalar, got shape [${loss.shape}]`);
  const cot = new Map<number, Tensor>();
  cot.set(loss.atom.id, op.onesLike(loss));
  const eqns = [...b.eqns];
  for (let i = eqns.length - 1; i >= 0; i--) {
    const eqn = eqns[i]!;
    const gs = eqn.outputs.map((o) => cot.get(o.id) ?? null);
    if (gs.every((g) => g === null)) continue;
    const def = getPrimitive(eqn.prim);
    if (!def.vjp) continue; // non-differentiable (comparisons, integer casts): no gradient flows
    const filled = gs.map((g, k) => g ?? op.zerosLike(new Tensor(eqn.outputs[k]!)));
    const ins = def.vjp({
      inputs: eqn.inputs.map((a) => new Tensor(a)),
      outputs: eqn.outputs.map((v) => new Tensor(v)),
      cotangents: filled,
      params: eqn.params,
    });
    eqn.inputs.forEach((a, k) => {
      const g = ins[k];
      if (!g || a.kind === 'lit') return;
      const prev = cot.get(a.id);
      cot.set(a.id, prev ? op.add(prev, g) : g);
    });
  }
  const out = new Map<number, Tensor>();
  for (const v of wrt) out.set(v.id, cot.get(v.id) ?? op.zerosLike(new Tensor(v)));
  return out;
}

/**
 * Traces `fn` (returning a scalar loss, or a record whose `loss` entry is the loss) and returns a program
 * with outputs `loss`, any aux outputs, and `grad/<name>` for each differentiated input.
 */
export function valueAndGrad(
  fn: (...args: Tensor[]) => Tensor | Record<string, Tensor>,
  specs: readonly InputSpec[],
  opts: ValueAndGradOptions = {},
): Program {
  const b = new Builder();
  return withBuilder(b, () => {
    const args = specs.map((s) => new Tensor(b.addInput(s.name, s.shape, s.dtype ?? 'float32', 'input')));
    const result = fn(...args);
    const outs = result instanceof Tensor ? { loss: result } : result;
    const loss = outs['loss'];
    if (!loss)
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        "valueAndGrad: the function must return a scalar or a record with a 'loss' entry",
      );
    const targets = opts.wrt
      ? b.inputs.filter((i) => opts.wrt!.includes(i.name))
      : b.inputs.filter((i) => i.role === 'weight');
    if (opts.wrt) {
      const missing = opts.wrt.filter((n) => !b.inputs.some((i) => i.name === n));
      if (missing.length > 0)
        throw new KinemaError('ENGINE_INVALID_GRAPH', `valueAndGrad: no input named ${missing.join(', ')}`);
    }
    const grads = backward(
      b,
      loss,
      targets.map((t) => t.v),
    );
    const outputs: ProgramOutput[] = Object.entries(outs).map(([name, t]) => ({ name, atom: t.atom }));
    for (const [name, t] of Object.entries(opts.aux?.(outs) ?? {})) outputs.push({ name, atom: t.atom });
    for (const t of targets) outputs.push({ name: `grad/${t.name}`, atom: grads.get(t.v.id)!.atom });
    return b.build(outputs);
  });
}
