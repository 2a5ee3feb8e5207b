// The op API model code calls. Each op binds a primitive (see prims/) or composes several.
import './prims/index.js';
import type { DType, Shape } from './ir.js';
import { numel } from './ir.js';
import { normAxis } from './host.js';
import { Tensor, bind, bind1, constant, scalar } from './tensor.js';
import type { ConvParams } from './prims/conv.js';
import { KinemaError } from '../errors.js';

export type TensorLike = Tensor | number;

function lift(x: TensorLike, like: Tensor): Tensor {
  return x instanceof Tensor ? x : scalar(x, like.dtype);
}
function pair(a: TensorLike, b: TensorLike): [Tensor, Tensor] {
  if (a instanceof Tensor) return [a, lift(b, a)];
  if (b instanceof Tensor) return [lift(a, b), b];
  throw new KinemaError('ENGINE_INVALID_GRAPH', 'at least one operand must be a Tensor');
}

export const add = (a: TensorLike, b: TensorLike): Tensor => bind1('add', pair(a, b));
export const sub = (a: TensorLike, b: TensorLike): Tensor => bind1('sub', pair(a, b));
export const mul = (a: TensorLike, b: TensorLike): Tensor => bind1('mul', pair(a, b));
export const div = (a: TensorLike, b: TensorLike): Tensor => bind1('div', pair(a, b));
export const pow = (a: TensorLike, b: TensorLike): Tensor => bind1('pow', pair(a, b));
export const maximum = (a: TensorLike, b: TensorLike): Tensor => bind1('maximum', pair(a, b));
export const minimum = (a: TensorLike, b: TensorLike): Tensor => bind1('minimum', pair(a, b));
export const less = (a: TensorLike, b: TensorLike): Tensor => bind1('less', pair(a, b));
export const greater = (a: TensorLike, b: TensorLike): Tensor => bind1('greater', pair(a, b));
export const lessEqual = (a: TensorLike, b: TensorLike): Tensor => bind1('lessEqual', pair(a, b));
export const greaterEqual = (a: TensorLike, b: TensorLike): Tensor => bind1('greaterEqual', pair(a, b));
export const equal = (a: TensorLike, b: TensorLike): Tensor => bind1('equal', pair(a, b));
export function where(c: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = pair(a, b);
  return bind1('where', [c, x, y]);
}

export const neg = (x: Tensor): Tensor => bind1('neg', [x]);
export const exp = (x: Tensor): Tensor => bind1('exp', [x]);
export const log = (x: Tensor): Tensor => bind1('log', [x]);
export const sqrt = (x: Tensor): Tensor => bind1('sqrt', [x]);
export const rsqrt = (x: Tensor): Tensor => bind1('reciprocal', [sqrt(x)]);
export const tanh = (x: Tensor): Tensor => bind1('tanh', [x]);
export const erf = (x: Tensor): Tensor => bind1('erf', [x]);
export const sin = (x: Tensor): Tensor => bind1('sin', [x]);
export const cos = (x: Tensor): Tensor => bind1('cos', [x]);
export const sigmoid = (x: Tensor): Tensor => bind1('sigmoid', [x]);
export const abs = (x: Tensor): Tensor => bind1('abs', [x]);
export const reciprocal = (x: Tensor): Tensor => bind1('reciprocal', [x]);
export const square = (x: Tensor): Tensor => mul(x, x);
export const relu = (x: Tensor): Tensor => maximum(x, 0);
export const silu = (x: Tensor): Tensor => mul(x, sigmoid(x));
export const quickGelu = (x: Tensor): Tensor => mul(x, sigmoid(mul(x, 1.702)));
/** GELU: exact (erf) or the tanh approximation (one fused kernel on ONNX Runtime). */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return bind1('gelu', [x], { approximate });
}
export const cast = (x: Tensor, to: DType): Tensor => (x.dtype === to ? x : bind1('cast', [x], { to }));

export function sum(x: Tensor, axes: readonly number[], keepdims = false): Tensor {
  return bind1('reduceSum', [x], { axes: axes.map((a) => normAxis(a, x.rank)), keepdims });
}
export function mean(x: Tensor, axes: readonly number[], keepdims = false): Tensor {
  const n = axes.reduce((acc, a) => acc * x.shape[normAxis(a, x.rank)]!, 1);
  return div(sum(x, axes, keepdims), n);
}
export function max(x: Tensor, axes: readonly number[], keepdims = false): Tensor {
  return bind1('reduceMax', [x], { axes: axes.map((a) => normAxis(a, x.rank)), keepdims });
}

export const matmul = (a: Tensor, b: Tensor): Tensor => bind1('matmul', [a, b]);
export function swapLast(x: Tensor): Tensor {
  const perm = x.shape.map((_, i) => i);
  perm[x.rank - 1] = x.rank - 2;
  perm[x.rank - 2] = x.rank - 1;
  return transpose(x, perm);
}

/** Reshape; one dimension may be -1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.reduce((a, d) => (d === -1 ? a : a * d), 1);
  const resolved = shape.map((d) => (d === -1 ? numel(x.shape) / known : d));
  if (resolved.join() === x.shape.join()) return x;
  return bind1('reshape', [x], { shape: resolved });
}
export function transpose(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.every((p, i) => p === i)) return x;
  return bind1('transpose', [x], { perm: [...perm] });
}
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (shape.join() === x.shape.join()) return x;
  return bind1('expand', [x], { shape: [...shape] });
}
/** Sums a broadcast gradient back to `shape`. */
export function unbroadcast(g: Tensor, shape: Shape): Tensor {
  if (g.shape.join() === shape.join()) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  const s = axes.length > 0 ? sum(g, axes, true) : g;
  return reshape(s, shape);
}
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 1) return xs[0]!;
  return bind1('concat', xs, { axis: normAxis(axis, xs[0]!.rank) });
}
/** Slice with NumPy semantics for negative starts/ends; steps must be positive. */
export function slice(
  x: Tensor,
  starts: readonly number[],
  ends: readonly number[],
  axes?: readonly number[],
  steps?: readonly number[],
): Tensor {
  const ax = (axes ?? starts.map((_, i) => i)).map((a) => normAxis(a, x.rank));
  const st = steps ?? ax.map(() => 1);
  const clamp = (v: number, d: number): number => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
  const s = ax.map((a, i) => clamp(starts[i]!, x.shape[a]!));
  const e = ax.map((a, i) => clamp(ends[i]!, x.shape[a]!));
  if (st.some((v) => v <= 0)) throw new KinemaError('ENGINE_INVALID_GRAPH', 'slice: steps must be positive');
  if (ax.every((a, i) => s[i] === 0 && e[i] === x.shape[a] && st[i] === 1)) return x;
  return bind1('slice', [x], { starts: s, ends: e, axes: ax, steps: [...st] });
}
export function split(x: Tensor, sizes: readonly number[], axis: number): Tensor[] {
  if (sizes.length === 1) return [x];
  return bind('split', [x], { sizes: [...sizes], axis: normAxis(axis, x.rank) });
}
export function chunk(x: Tensor, n: number, axis: number): Tensor[] {
  const d = x.shape[normAxis(axis, x.rank)]!;
  if (d % n !== 0)
    throw new KinemaError('ENGINE_INVALID_GRAPH', `chunk: dimension ${d} is not divisible by ${n}`);
  return split(x, new Array<number>(n).fill(d / n), axis);
}
/** Constant padding; pads = [begin per axis..., end per axis...] (ONNX order). */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  if (pads.every((p) => p === 0)) return x;
  return bind1('pad', [x], { pads: [...pads], value });
}
export const gather = (table: Tensor, indices: Tensor): Tensor => bind1('gather', [table, indices]);
export function scatterAddRows(updates: Tensor, indices: Tensor, shape: Shape): Tensor {
  return bind1('scatterAddRows', [updates, indices], { shape: [...shape] });
}
/** Gradient of a strided slice: spreads g back into zeros of `shape`. */
export function sliceGradStrided(
  g: Tensor,
  shape: Shape,
  starts: readonly number[],
  axes: readonly number[],
  steps: readonly number[],
): Tensor {
  let out = g;
  axes.forEach((a, i) => {
    const s = steps[i]!;
    const len = out.shape[a]!;
    if (s > 1) {
      const un = reshape(out, [...out.shape.slice(0, a + 1), 1, ...out.shape.slice(a + 1)]);
      const padded = pad(un, padAt(un.rank, a + 1, 0, s - 1));
      out = reshape(padded, [...out.shape.slice(0, a), len * s, ...out.shape.slice(a + 1)]);
    }
    const before = starts[i]!;
    const after = shape[a]! - before - out.shape[a]!;
    out =
      after >= 0
        ? pad(out, padAt(out.rank, a, before, after))
        : slice(pad(out, padAt(out.rank, a, before, 0)), [0], [shape[a]!], [a]);
  });
  return out;
}
function padAt(rank: number, axis: number, before: number, after: number): number[] {
  const p = new Array<number>(2 * rank).fill(0);
  p[axis] = before;
  p[axis + rank] = after;
  return p;
}

export const softmax = (x: Tensor, axis = -1): Tensor =>
  bind1('softmax', [x], { axis: normAxis(axis, x.rank) });
/** Normalizes over the last axis (no affine). */
/** x divided by its L2 norm along `axis` (plus `eps` under the root, against a zero norm). */
export function l2Normalize(x: Tensor, axis: number, eps = 0): Tensor {
  const sq = sum(square(x), [axis], true);
  return mul(x, rsqrt(eps > 0 ? add(sq, eps) : sq));
}

/** log Σ exp(x) along `axis` (kept as a size-1 axis), computed stably by shifting with the maximum. */
export function logSumExp(x: Tensor, axis: number): Tensor {
  const m = max(x, [axis], true);
  return add(log(sum(exp(sub(x, m)), [axis], true)), m);
}

export const layerNormCore = (x: Tensor, eps: number): Tensor => bind1('layerNorm', [x], { eps });
/** Group norm over [N, C, ...] without affine: a layer norm over each group's values. */
export function groupNormCore(x: Tensor, groups: number, eps: number): Tensor {
  const [n, c] = x.shape as [number, number];
  if (c % groups !== 0)
    throw new KinemaError(
      'ENGINE_INVALID_GRAPH',
      `group norm: ${c} channels are not divisible by ${groups} groups`,
    );
  return reshape(layerNormCore(reshape(x, [n, groups, -1]), eps), x.shape);
}

export interface ConvOptions {
  strides?: readonly number[];
  pads?: readonly number[];
  dilations?: readonly number[];
  group?: number;
}
export function conv(x: Tensor, w: Tensor, opts: ConvOptions = {}, bias?: Tensor): Tensor {
  const r = x.rank - 2;
  const c: ConvParams = {
    strides: [...(opts.strides ?? new Array<number>(r).fill(1))],
    pads: [...(opts.pads ?? new Array<number>(2 * r).fill(0))],
    dilations: [...(opts.dilations ?? new Array<number>(r).fill(1))],
    group: opts.group ?? 1,
  };
  const y = bind1('conv', [x, w], { ...c });
  return bias ? add(y, reshape(bias, [1, -1, ...new Array<number>(r).fill(1)])) : y;
}
/** Transposed conv whose output has exactly `outShape` (output padding derived). */
export function convTransposeTo(x: Tensor, w: Tensor, c: ConvParams, outShape: Shape): Tensor {
  const r = x.rank - 2;
  const outputPadding = outShape.slice(2).map((s, i) => {
    const base =
      (x.shape[i + 2]! - 1) * c.strides[i]! -
      c.pads[i]! -
      c.pads[i + r]! +
      c.dilations[i]! * (w.shape[i + 2]! - 1) +
      1;
    return s - base;
  });
  return bind1('convTranspose', [x, w], { ...c, outputPadding });
}
export function convWeightGrad(x: Tensor, gy: Tensor, c: ConvParams, wshape: Shape): Tensor {
  return bind1('convWeightGrad', [x, gy], { ...c, wshape: [...wshape] });
}

export function resize(x: Tensor, size: readonly number[], mode: 'nearest' | 'linear' = 'nearest'): Tensor {
  return bind1('resize', [x], { size: [...size], mode });
}
/** Gradient of nearest resize by integer factors: sum each block. */
export function nearestResizeGrad(g: Tensor, inShape: Shape): Tensor {
  const spatial = inShape.slice(2);
  const factors = spatial.map((s, i) => g.shape[i + 2]! / s);
  if (factors.some((f) => !Number.isInteger(f)))
    throw new KinemaError('ENGINE_INVALID_GRAPH', 'resize gradient needs integer scale factors');
  const split: number[] = [...inShape.slice(0, 2)];
  spatial.forEach((s, i) => split.push(s, factors[i]!));
  const axes = spatial.map((_, i) => 3 + 2 * i);
  return reshape(sum(reshape(g, split), axes), inShape);
}

export const zerosLike = (x: Tensor): Tensor => expand(scalar(0, x.dtype), x.shape);
export const onesLike = (x: Tensor): Tensor => expand(scalar(1, x.dtype), x.shape);
export function full(shape: Shape, value: number, dtype: DType = 'float32'): Tensor {
  return expand(scalar(value, dtype), shape);
}
export { constant, scalar };

/**
 * Multi-head attention on packed heads: q [B, L, H·D], k/v [B, S, H·D] → [B, L, H·Dv]; `bias` is an additive
 * mask broadcastable to [B, H, L, S] (given as rank 4). One fused kernel on ONNX Runtime.
 */
export function multiHeadAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  heads: number,
  opts: { scale?: number; bias?: Tensor } = {},
): Tensor {
  const scale = opts.scale ?? 1 / Math.sqrt(q.shape[2]! / heads);
  return bind1('mha', opts.bias ? [q, k, v, opts.bias] : [q, k, v], { heads, scale });
}

/** Scaled dot-product attention over [..., L, D] queries and [..., S, D] keys/values (one head per leading index). */
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: { scale?: number; mask?: Tensor } = {},
): Tensor {
  const lead = q.shape.slice(0, -2);
  const n = numel(lead);
  const [l, d] = q.shape.slice(-2) as [number, number];
  const s = k.shape[k.rank - 2]!;
  const flat = (t: Tensor): Tensor => reshape(t, [n, t.shape[t.rank - 2]!, t.shape[t.rank - 1]!]);
  let bias: Tensor | undefined;
  if (opts.mask) {
    const m = opts.mask;
    const full =
      m.rank <= 2 || numel(m.shape.slice(0, -2)) === 1
        ? reshape(m, [1, 1, m.shape[m.rank - 2] ?? 1, s])
        : reshape(expand(m, [...lead, l, s]), [n, 1, l, s]);
    bias = full.shape[2] === l ? full : expand(full, [full.shape[0]!, 1, l, s]);
  }
  const out = multiHeadAttention(flat(q), flat(k), flat(v), 1, {
    scale: opts.scale ?? 1 / Math.sqrt(d),
    ...(bias ? { bias } : {}),
  });
  return reshape(out, [...lead, l, v.shape[v.rank - 1]!]);
}
