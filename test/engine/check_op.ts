// One helper checks every op: ONNX Runtime vs the float64 reference interpreter (forward), the gradient
// program vs central finite differences (float64, interpreter), and the float32 gradient program on ORT
// vs the float64 gradients.
import assert from 'node:assert/strict';
import type { DType, Shape } from '../../src/engine/ir.js';
import { numel } from '../../src/engine/ir.js';
import { trace, constant } from '../../src/engine/tensor.js';
import type { Tensor } from '../../src/engine/tensor.js';
import * as op from '../../src/engine/ops.js';
import { compile, hostTensor } from '../../src/engine/runtime.js';
import type { HostTensor } from '../../src/engine/runtime.js';
import { interpret } from '../../src/engine/interpret.js';
import { valueAndGrad } from '../../src/engine/autodiff.js';
import { Generator } from '../../src/engine/random.js';

export interface CheckOpOptions {
  /** Draw float inputs from [0.5, 2) instead of N(0, 1). */
  positive?: boolean;
  /** Fixed inputs by position (e.g. int64 indices); others are drawn at random. */
  fixed?: Record<number, HostTensor>;
  /** Check gradients (default true). */
  grad?: boolean;
  /** Forward tolerance relative to the output's max magnitude (default 1e-5). */
  rtol?: number;
  /** Elements sampled per input for finite differences (default 24). */
  fdSamples?: number;
  seed?: number;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  what: string,
): number {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const scale = Math.max(maxAbs(expected), 1e-6);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= rtol * scale))
      assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]} (tol ${rtol * scale})`);
    worst = Math.max(worst, d / scale);
  }
  return worst;
}

function toNumbers(t: HostTensor): Float64Array {
  return Float64Array.from(t.data as ArrayLike<number>);
}

function makeInputs(shapes: readonly Shape[], dtype: DType, opts: CheckOpOptions): HostTensor[] {
  const rng = new Generator(opts.seed ?? 1234);
  return shapes.map((s, i) => {
    const fixed = opts.fixed?.[i];
    if (fixed) return fixed;
    const n = numel(s);
    const v = opts.positive
      ? Float64Array.from(rng.uniform(n), (u) => 0.5 + 1.5 * u)
      : Float64Array.from(rng.normal(n));
    return hostTensor(dtype === 'float64' ? v : Float32Array.from(v), s, dtype);
  });
}

function specsOf(inputs: readonly HostTensor[]) {
  return inputs.map((t, i) => ({ name: `x${i}`, shape: t.shape, dtype: t.dtype }));
}

function feedsOf(inputs: readonly HostTensor[]): Record<string, HostTensor> {
  return Object.fromEntries(inputs.map((t, i) => [`x${i}`, t]));
}

export async function checkOp(
  name: string,
  fn: (...xs: Tensor[]) => Tensor,
  shapes: readonly Shape[],
  opts: CheckOpOptions = {},
): Promise<void> {
  // 1. Forward: ORT (float32) vs the reference interpreter.
  const in32 = makeInputs(shapes, 'float32', opts);
  const prog = trace(fn, specsOf(in32));
  const ort = (await compile(prog)).run(feedsOf(in32));
  const ref = interpret(prog, feedsOf(in32));
  assertClose(toNumbers((await ort)['out0']!), toNumbers(ref['out0']!), opts.rtol ?? 1e-5, `${name} forward`);
  if (opts.grad === false) return;

  // 2. Gradients of loss = Σ fn(x) · R.
  const outShape = ref['out0']!.shape;
  const R = new Generator(99).normal(numel(outShape));
  const lossFn =
    (dtype: DType) =>
    (...xs: Tensor[]) => {
      const r = constant(dtype === 'float64' ? Float64Array.from(R) : Float32Array.from(R), outShape, dtype);
      const y = fn(...xs);
      return op.sum(
        op.mul(y, r),
        y.shape.map((_, i) => i),
      );
    };
  const diffIdx = in32
    .map((t, i) => (t.dtype === 'float32' && !opts.fixed?.[i] ? i : -1))
    .filter((i) => i >= 0);
  const wrt = diffIdx.map((i) => `x${i}`);
  const in64 = in32.map((t) =>
    t.dtype === 'float32' ? hostTensor(Float64Array.from(t.data as Float32Array), t.shape, 'float64') : t,
  );
  const g64 = interpret(valueAndGrad(lossFn('float64'), specsOf(in64), { wrt }), feedsOf(in64));
  const fwd64 = trace(lossFn('float64'), specsOf(in64));
  const lossAt = (inputs: HostTensor[]): number =>
    (interpret(fwd64, feedsOf(inputs))['out0']!.data as Float64Array)[0]!;
  const rng = new Generator(7);
  for (const i of diffIdx) {
    const base = in64[i]!.data as Float64Array;
    const grad = toNumbers(g64[`grad/x${i}`]!);
    const scale = Math.max(maxAbs(grad), 1e-3);
    const samples = Math.min(base.length, opts.fdSamples ?? 24);
    const picks =
      base.length <= samples ? [...base.keys()] : [...rng.uint32(samples)].map((u) => u % base.length);
    for (const k of picks) {
      const h = 1e-6 * Math.max(1, Math.abs(base[k]!));
      const plus = Float64Array.from(base);
      const minus = Float64Array.from(base);
      plus[k]! += h;
      minus[k]! -= h;
      const with_ = (d: Float64Array) =>
        in64.map((t, j) => (j === i ? hostTensor(d, t.shape, 'float64') : t));
      const fd = (lossAt(with_(plus)) - lossAt(with_(minus))) / (2 * h);
      if (!(Math.abs(fd - grad[k]!) <= 1e-5 * scale + 1e-7)) {
        assert.fail(`${name}: d loss/d x${i}[${k}] = ${grad[k]} by autodiff, ${fd} by finite differences`);
      }
    }
  }

  // 3. The float32 gradient program on ORT matches the float64 gradients.
  const g32 = await (
    await compile(valueAndGrad(lossFn('float32'), specsOf(in32), { wrt }))
  ).run(feedsOf(in32));
  for (const i of diffIdx) {
    assertClose(
      toNumbers(g32[`grad/x${i}`]!),
      toNumbers(g64[`grad/x${i}`]!),
      1e-4,
      `${name} grad x${i} on ORT`,
    );
  }
}
