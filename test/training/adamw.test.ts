import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, clipGradNorm } from '../../src/training/adamw.js';

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = ''): void {
  assert.equal(actual.length, expected.length, `${what} length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.ok(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)), `${what}[${i}]: ${a} vs ${e}`);
  }
}

/** torch.optim.AdamW's update written out in float64, independently of the implementation under test. */
function referenceAdamW(
  p0: number[],
  grads: number[][],
  lrs: number[],
  o: { b1: number; b2: number; eps: number; wd: number },
): { p: number[]; m: number[]; v: number[] } {
  const p = [...p0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  grads.forEach((g, s) => {
    const t = s + 1;
    const lr = lrs[s]!;
    for (let i = 0; i < p.length; i++) {
      p[i] = p[i]! * (1 - lr * o.wd);
      m[i] = m[i]! * o.b1 + (1 - o.b1) * g[i]!;
      v[i] = v[i]! * o.b2 + (1 - o.b2) * g[i]! * g[i]!;
      const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - o.b2 ** t) + o.eps;
      p[i] = p[i]! - (lr / (1 - o.b1 ** t)) * (m[i]! / denom);
    }
  });
  return { p, m, v };
}

test('AdamW matches values produced by torch.optim.AdamW (torch 1.13, float32)', () => {
  const params = new Map([
    ['a', Float32Array.of(1, -0.5)],
    ['b', Float32Array.of(0.25)],
  ]);
  const opt = new AdamW({ lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
  const steps: [number[], number[]][] = [
    [[0.5, -0.3], [1]],
    [[-0.2, 0.1], [1]],
    [[0.4, 0], [-2]],
  ];
  for (const [ga, gb] of steps) {
    opt.step(
      params,
      new Map([
        ['a', Float32Array.from(ga)],
        ['b', Float32Array.from(gb)],
      ]),
    );
  }
  assert.equal(opt.stepCount, 3);
  close(params.get('a')!, [0.8031232357025146, -0.327782541513443], 1e-7, 'a');
  close(params.get('b')!, [0.057115618139505386], 1e-7, 'b');
  const state = opt.stateDict();
  close(state.get('exp_avg/a')!, [0.0625, -0.015300000086426735], 1e-7, 'exp_avg');
  close(state.get('exp_avg_sq/a')!, [0.0004494602617342025, 9.981010953197256e-5], 1e-7, 'exp_avg_sq');
  assert.deepEqual([...state.keys()].sort(), ['exp_avg/a', 'exp_avg/b', 'exp_avg_sq/a', 'exp_avg_sq/b']);
});

test('AdamW with per-step lr overrides matches torch and the float64 reference over 10 steps', () => {
  const n = 6;
  const p0 = Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i + 1)));
  const grads = Array.from({ length: 10 }, (_, t) =>
    Array.from({ length: n }, (_, i) => Math.fround(Math.cos((i + 1) * (t + 1)) * 10 ** (i - 3))),
  );
  const lrs = grads.map((_, t) => (3e-3 * (t + 1)) / 10);
  const params = new Map([['w', Float32Array.from(p0)]]);
  const opt = new AdamW({ lr: 1, betas: [0.85, 0.98], eps: 1e-6, weightDecay: 0.05 });
  grads.forEach((g, t) => opt.step(params, new Map([['w', Float32Array.from(g)]]), lrs[t]));
  const torchResult = [
    0.8424686789512634, 0.9099605083465576, 0.14215999841690063, -0.7542693614959717, -0.9567781090736389,
    -0.2834133505821228,
  ];
  close(params.get('w')!, torchResult, 2e-7, 'vs torch');
  const ref = referenceAdamW(p0, grads, lrs, { b1: 0.85, b2: 0.98, eps: 1e-6, wd: 0.05 });
  close(params.get('w')!, ref.p, 2e-7, 'vs float64 reference');
  close(opt.stateDict().get('exp_avg/w')!, ref.m, 1e-6, 'exp_avg');
  close(opt.stateDict().get('exp_avg_sq/w')!, ref.v, 1e-6, 'exp_avg_sq');
});

test('AdamW defaults are torch defaults; state round-trips through stateDict/loadStateDict', () => {
  const opt = new AdamW({ lr: 1e-3 });
  assert.deepEqual(opt.hyperparameters, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
  const grads = (k: number): Map<string, Float32Array> => new Map([['w', Float32Array.of(k, -2 * k, 0.5)]]);
  const a = new Map([['w', Float32Array.of(0.1, 0.2, 0.3)]]);
  for (let k = 1; k <= 3; k++) opt.step(a, grads(k));
  const b = new Map([['w', a.get('w')!.slice()]]);
  const resumed = new AdamW({ lr: 1e-3 });
  resumed.loadStateDict(opt.stateDict(), opt.stepCount);
  for (let k = 4; k <= 6; k++) {
    opt.step(a, grads(k));
    resumed.step(b, grads(k));
  }
  assert.deepEqual(b.get('w'), a.get('w'));
  assert.equal(resumed.stepCount, 6);
});

test('AdamW rejects mismatched parameters, gradients and state', () => {
  const opt = new AdamW({ lr: 0.1 });
  const params = new Map([['w', new Float32Array(2)]]);
  assert.throws(() => opt.step(params, new Map()), /no gradient for parameter "w"/);
  assert.throws(() => opt.step(params, new Map([['w', new Float32Array(3)]])), /"w" has 3 elements/);
  assert.throws(
    () =>
      opt.step(
        params,
        new Map([
          ['w', new Float32Array(2)],
          ['x', new Float32Array(1)],
        ]),
      ),
    /"x" has no matching parameter/,
  );
  assert.equal(opt.stepCount, 0);
  assert.throws(() => new AdamW({ lr: -1 }), /lr/);
  assert.throws(() => new AdamW({ lr: 1, betas: [1, 0.9] }), /beta1/);
  assert.throws(() => opt.loadStateDict(new Map([['momentum/w', new Float32Array(2)]]), 1), /unexpected key/);
  assert.throws(() => opt.loadStateDict(new Map([['exp_avg/w', new Float32Array(2)]]), 1), /exp_avg_sq/);
});

test('clipGradNorm uses the global L2 norm like torch.nn.utils.clip_grad_norm_', () => {
  const grads = new Map([
    ['x', Float32Array.of(3, -4)],
    ['y', Float32Array.of(12)],
  ]);
  assert.equal(clipGradNorm(grads, 1), 13);
  // torch 1.13 result for the same gradients.
  close(grads.get('x')!, [0.23076921701431274, -0.307692289352417], 1e-7);
  close(grads.get('y')!, [0.923076868057251], 1e-7);
  const small = new Map([['x', Float32Array.of(0.3, 0.4)]]);
  assert.ok(Math.abs(clipGradNorm(small, 1) - 0.5) < 1e-7);
  assert.deepEqual([...small.get('x')!], [Math.fround(0.3), Math.fround(0.4)]);
  assert.throws(() => clipGradNorm(small, 0), /maxNorm/);
});

test('AdamW step on 1M parameters is fast', () => {
  const n = 1_000_000;
  const params = new Map([['w', new Float32Array(n).fill(0.5)]]);
  const grads = new Map([['w', new Float32Array(n).fill(0.01)]]);
  const opt = new AdamW({ lr: 1e-4 });
  opt.step(params, grads); // warm up the JIT
  const t0 = performance.now();
  opt.step(params, grads);
  const ms = performance.now() - t0;
  // Generous bound for a shared CI machine; about 5 ms is typical.
  assert.ok(ms < 200, `1M-parameter step took ${ms.toFixed(1)} ms`);
});

test('AdamW lrScale: each parameter steps as if its optimizer had lr × scale (weight decay included)', () => {
  const start = (): Map<string, Float32Array> =>
    new Map([
      ['a', Float32Array.from([0.5, -1, 2])],
      ['b', Float32Array.from([1.5, 0.25])],
    ]);
  const gradsAt = (k: number): Map<string, Float32Array> =>
    new Map([
      ['a', Float32Array.from([0.1 * k, -0.3, 0.05])],
      ['b', Float32Array.from([-0.2, 0.4 / k])],
    ]);
  const grouped = start();
  const opt = new AdamW({ lr: 1e-2, weightDecay: 0.1 });
  const alone = { a: start(), b: start() };
  const optA = new AdamW({ lr: 1e-2, weightDecay: 0.1 });
  const optB = new AdamW({ lr: 3e-2, weightDecay: 0.1 });
  for (let k = 1; k <= 5; k++) {
    opt.step(grouped, gradsAt(k), 1e-2, (name) => (name === 'b' ? 3 : 1));
    optA.step(new Map([['a', alone.a.get('a')!]]), new Map([['a', gradsAt(k).get('a')!]]));
    optB.step(new Map([['b', alone.b.get('b')!]]), new Map([['b', gradsAt(k).get('b')!]]));
  }
  assert.deepEqual(grouped.get('a'), alone.a.get('a'));
  assert.deepEqual(grouped.get('b'), alone.b.get('b'));
  assert.notDeepEqual(
    grouped.get('b'),
    (() => {
      const p = start();
      const o = new AdamW({ lr: 1e-2, weightDecay: 0.1 });
      for (let k = 1; k <= 5; k++) o.step(p, gradsAt(k));
      return p.get('b');
    })(),
  );
  assert.throws(() => opt.step(grouped, gradsAt(1), 1e-2, () => -1), /lr scale of "a"/);
});
