// Sinusoidal timestep projection and TimestepEmbedding against closed-form host computations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { trace } from '../../../src/engine/tensor.js';
import type { Tensor } from '../../../src/engine/tensor.js';
import { interpret } from '../../../src/engine/interpret.js';
import { hostTensor } from '../../../src/engine/runtime.js';
import type { HostTensor } from '../../../src/engine/runtime.js';
import {
  TimestepEmbedding,
  sinusoidalEmbedding,
  sinusoidalFrequencies,
} from '../../../src/models/unet3d/embeddings.js';

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

// The exponent is rounded to float32 before exp (as PyTorch does), so values differ from float64 by < 1e-6 relative.
test('frequencies: exp(-ln(10000)·i/(half − shift)) in float32', () => {
  for (const [dim, shift] of [
    [32, 0],
    [320, 0],
    [33, 1],
  ] as const) {
    const f = sinusoidalFrequencies(dim, shift);
    const half = Math.floor(dim / 2);
    assert.equal(f.length, half);
    const exact = Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / (half - shift)));
    f.forEach((v, i) =>
      assert.ok(Math.abs(v - exact[i]!) <= 1e-6 * exact[i]!, `dim ${dim} i ${i}: ${v} vs ${exact[i]}`),
    );
  }
});

function embed(ts: number[], dim: number, flip: boolean, shift: number): HostTensor {
  const program = trace(
    (t: Tensor) => sinusoidalEmbedding(t, dim, { flipSinToCos: flip, downscaleFreqShift: shift }),
    [{ name: 't', shape: [ts.length], dtype: 'int64' }],
  );
  return interpret(program, { t: hostTensor(BigInt64Array.from(ts.map(BigInt)), [ts.length]) })['out0']!;
}

test('embedding = [cos(t·f), sin(t·f)] (flip_sin_to_cos), or [sin, cos]; odd dims padded with a zero', () => {
  const ts = [0, 1, 500, 999];
  for (const [dim, flip, shift] of [
    [32, true, 0],
    [8, false, 1],
    [7, true, 0],
  ] as const) {
    const out = embed(ts, dim, flip, shift);
    assert.deepEqual(out.shape, [ts.length, dim]);
    const half = Math.floor(dim / 2);
    const f = sinusoidalFrequencies(dim, shift);
    const expected: number[] = [];
    for (const t of ts) {
      const args = Array.from(f, (fi) => Math.fround(t * fi));
      const [sin, cos] = [args.map(Math.sin), args.map(Math.cos)];
      expected.push(...(flip ? [...cos, ...sin] : [...sin, ...cos]), ...(dim % 2 === 1 ? [0] : []));
    }
    assert.ok(maxDiff(out.data as Float32Array, expected) < 1e-6, `dim ${dim}`);
    assert.equal(half * 2 + (dim % 2), dim);
  }
  // t = 0 with flip: cos(0) = 1 for the first half, sin(0) = 0 for the second.
  const zero = embed([0], 8, true, 0).data as Float32Array;
  assert.deepEqual([...zero], [1, 1, 1, 1, 0, 0, 0, 0]);
});

test('TimestepEmbedding: linear_2(act(linear_1(x))) with diffusers parameter names', () => {
  const te = new TimestepEmbedding(4, 6, 'silu');
  assert.deepEqual([...te.namedParameters().keys()].sort(), [
    'linear_1.bias',
    'linear_1.weight',
    'linear_2.bias',
    'linear_2.weight',
  ]);
  const sd = te.initParameters(3);
  const x = Float32Array.from([0.5, -1, 2, 0.25, 1, 0, -0.5, 3]);
  const program = trace((v: Tensor) => te.forward(v), [{ name: 'x', shape: [2, 4] }]);
  const feeds: Record<string, HostTensor> = { x: hostTensor(x, [2, 4]) };
  for (const [k, v] of sd) feeds[k] = hostTensor(v, te.namedParameters().get(k)!.shape);
  const out = interpret(program, feeds)['out0']!.data as Float32Array;
  const linear = (inp: number[], w: Float32Array, b: Float32Array, nOut: number): number[] =>
    Array.from({ length: nOut }, (_, o) => inp.reduce((s, xi, i) => s + xi * w[o * inp.length + i]!, b[o]!));
  const expected: number[] = [];
  for (let r = 0; r < 2; r++) {
    const h = linear([...x.slice(r * 4, r * 4 + 4)], sd.get('linear_1.weight')!, sd.get('linear_1.bias')!, 6);
    const act = h.map((v) => v / (1 + Math.exp(-v)));
    expected.push(...linear(act, sd.get('linear_2.weight')!, sd.get('linear_2.bias')!, 6));
  }
  assert.ok(maxDiff(out, expected) < 1e-5, `max diff ${maxDiff(out, expected)}`);
});
