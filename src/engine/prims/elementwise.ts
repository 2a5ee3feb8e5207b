// Elementwise primitives: unary math, broadcasting binary arithmetic, comparisons, where, cast.
import { definePrimitive } from '../primitive.js';
import type { AbstractValue, VjpArgs } from '../primitive.js';
import type { DType, HostData, Params } from '../ir.js';
import { isFloat, numel } from '../ir.js';
import { broadcastIndex, broadcastShapes, fromF64, toF64 } from '../host.js';
import { attr, elemTypeOf } from '../onnx/lower_ctx.js';
import type { Tensor } from '../tensor.js';
import * as op from '../ops.js';
import { KinemaError } from '../../errors.js';

function sameAval(inputs: readonly AbstractValue[]): AbstractValue[] {
  const x = inputs[0];
  if (!x) throw new KinemaError('ENGINE_INVALID_GRAPH', 'missing input');
  return [{ shape: x.shape, dtype: x.dtype }];
}

function unary(
  name: string,
  onnxOp: string,
  f: (x: number) => number,
  vjp?: (x: Tensor, y: Tensor, g: Tensor) => Tensor,
  floatOnly = true,
): void {
  definePrimitive({
    name,
    infer(inputs) {
      const x = inputs[0];
      if (!x) throw new KinemaError('ENGINE_INVALID_GRAPH', `${name} takes one input`);
      if (floatOnly && !isFloat(x.dtype))
        throw new KinemaError('ENGINE_INVALID_GRAPH', `${name} needs a float tensor, got ${x.dtype}`);
      return sameAval(inputs);
    },
    lower: ({ inputs, outputs, sink }) => sink.node(onnxOp, inputs, outputs),
    evaluate([x], _p, [out]) {
      const v = toF64(x!.data, x!.dtype);
      return [fromF64(v.map(f), out!.dtype)];
    },
    ...(vjp && {
      vjp: ({ inputs, outputs, cotangents }: VjpArgs) => [vjp(inputs[0]!, outputs[0]!, cotangents[0]!)],
    }),
  });
}

const SQRT_PI_INV2 = 2 / Math.sqrt(Math.PI);
unary(
  'neg',
  'Neg',
  (x) => -x,
  (_x, _y, g) => op.neg(g),
  false,
);
unary('exp', 'Exp', Math.exp, (_x, y, g) => op.mul(g, y));
unary('log', 'Log', Math.log, (x, _y, g) => op.div(g, x));
unary('sqrt', 'Sqrt', Math.sqrt, (_x, y, g) => op.div(op.mul(g, 0.5), y));
unary('tanh', 'Tanh', Math.tanh, (_x, y, g) => op.mul(g, op.sub(1, op.mul(y, y))));
unary('erf', 'Erf', erf, (x, _y, g) => op.mul(g, op.mul(op.exp(op.neg(op.mul(x, x))), SQRT_PI_INV2)));
unary('sin', 'Sin', Math.sin, (x, _y, g) => op.mul(g, op.cos(x)));
unary('cos', 'Cos', Math.cos, (x, _y, g) => op.neg(op.mul(g, op.sin(x))));
unary(
  'sigmoid',
  'Sigmoid',
  (x) => 1 / (1 + Math.exp(-x)),
  (_x, y, g) => op.mul(g, op.mul(y, op.sub(1, y))),
);
unary('abs', 'Abs', Math.abs, (x, _y, g) => op.where(op.less(x, 0), op.neg(g), g), false);
unary(
  'reciprocal',
  'Reciprocal',
  (x) => 1 / x,
  (_x, y, g) => op.neg(op.mul(g, op.mul(y, y))),
);

/** Abramowitz–Stegun 7.1.26 is too coarse for a reference; use a series / continued fraction in float64. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 80; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * SQRT_PI_INV2 * sum;
  }
  // Continued fraction for erfc (Lentz), accurate for |x| >= 2.5.
  let f = ax;
  let c = ax;
  let d = 0;
  for (let i = 1; i < 200; i++) {
    const an = i / 2;
    d = ax + an * d;
    d = d === 0 ? 1e-300 : 1 / d;
    c = ax + an / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  return Math.sign(x) * (1 - erfc);
}

/** GELU as one primitive (ORT's fused Gelu / FastGelu kernels); exact (erf) or the tanh approximation. */
const GELU_C = Math.sqrt(2 / Math.PI);
function geluHost(x: number, tanhApprox: boolean): number {
  return tanhApprox
    ? 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x * x * x)))
    : 0.5 * x * (1 + erf(x * Math.SQRT1_2));
}
definePrimitive({
  name: 'gelu',
  infer: (inputs) => sameAval(inputs),
  lower: ({ inputs, outputs, params, sink }) =>
    sink.node(params['approximate'] === 'tanh' ? 'FastGelu' : 'Gelu', inputs, outputs, {}, 'com.microsoft'),
  evaluate([x], p, [out]) {
    const tanhApprox = p['approximate'] === 'tanh';
    return [
      fromF64(
        toF64(x!.data, x!.dtype).map((v) => geluHost(v, tanhApprox)),
        out!.dtype,
      ),
    ];
  },
  vjp({ inputs, cotangents, params }) {
    const x = inputs[0]!;
    const g = cotangents[0]!;
    if (params['approximate'] === 'tanh') {
      // d/dx [0.5x(1 + tanh(u))], u = c(x + 0.044715x³)
      const t = op.tanh(op.mul(op.add(x, op.mul(op.mul(op.mul(x, x), x), 0.044715)), GELU_C));
      const du = op.mul(op.add(op.mul(op.mul(x, x), 3 * 0.044715), 1), GELU_C);
      const d = op.add(
        op.mul(op.add(t, 1), 0.5),
        op.mul(op.mul(op.mul(x, 0.5), op.sub(1, op.mul(t, t))), du),
      );
      return [op.mul(g, d)];
    }
    // d/dx [x Φ(x)] = Φ(x) + x φ(x)
    const cdf = op.mul(op.add(op.erf(op.mul(x, Math.SQRT1_2)), 1), 0.5);
    const pdf = op.mul(op.exp(op.mul(op.mul(x, x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
    return [op.mul(g, op.add(cdf, op.mul(x, pdf)))];
  },
});

function binaryInfer(name: string, outDtype?: DType) {
  return (inputs: readonly AbstractValue[]): AbstractValue[] => {
    const [a, b] = inputs;
    if (!a || !b) throw new KinemaError('ENGINE_INVALID_GRAPH', `${name} takes two inputs`);
    if (a.dtype !== b.dtype)
      throw new KinemaError('ENGINE_INVALID_GRAPH', `${name}: dtypes differ (${a.dtype} vs ${b.dtype})`);
    return [{ shape: broadcastShapes(a.shape, b.shape), dtype: outDtype ?? a.dtype }];
  };
}

function binaryEval(f: (a: number, b: number) => number) {
  return (
    inputs: readonly { shape: readonly number[]; dtype: DType; data: HostData }[],
    _p: Params,
    outs: readonly AbstractValue[],
  ) => {
    const [a, b] = inputs;
    const out = outs[0]!;
    const av = toF64(a!.data, a!.dtype);
    const bv = toF64(b!.data, b!.dtype);
    const ia = broadcastIndex(a!.shape, out.shape);
    const ib = broadcastIndex(b!.shape, out.shape);
    const r = new Float64Array(numel(out.shape));
    for (let i = 0; i < r.length; i++) r[i] = f(av[ia[i]!]!, bv[ib[i]!]!);
    return [fromF64(r, out.dtype)];
  };
}

function binary(
  name: string,
  onnxOp: string,
  f: (a: number, b: number) => number,
  vjp?: (a: Tensor, b: Tensor, y: Tensor, g: Tensor) => [Tensor | null, Tensor | null],
): void {
  definePrimitive({
    name,
    infer: binaryInfer(name),
    lower: ({ inputs, outputs, sink }) => sink.node(onnxOp, inputs, outputs),
    evaluate: binaryEval(f),
    ...(vjp && {
      vjp: ({ inputs, outputs, cotangents }: VjpArgs) => {
        const [a, b] = inputs as [Tensor, Tensor];
        const [ga, gb] = vjp(a, b, outputs[0]!, cotangents[0]!);
        return [ga && op.unbroadcast(ga, a.shape), gb && op.unbroadcast(gb, b.shape)];
      },
    }),
  });
}

binary(
  'add',
  'Add',
  (a, b) => a + b,
  (_a, _b, _y, g) => [g, g],
);
binary(
  'sub',
  'Sub',
  (a, b) => a - b,
  (_a, _b, _y, g) => [g, op.neg(g)],
);
binary(
  'mul',
  'Mul',
  (a, b) => a * b,
  (a, b, _y, g) => [op.mul(g, b), op.mul(g, a)],
);
binary(
  'div',
  'Div',
  (a, b) => a / b,
  (_a, b, y, g) => {
    const ga = op.div(g, b);
    return [ga, op.neg(op.mul(ga, y))];
  },
);
binary(
  'pow',
  'Pow',
  (a, b) => Math.pow(a, b),
  (a, b, y, g) => [
    op.mul(g, op.mul(b, op.pow(a, op.sub(b, 1)))),
    op.mul(g, op.mul(y, op.log(op.where(op.greater(a, 0), a, op.onesLike(a))))),
  ],
);
binary('maximum', 'Max', Math.max, (a, b, _y, g) => {
  const m = op.greaterEqual(a, b);
  return [op.where(m, g, op.zerosLike(g)), op.where(m, op.zerosLike(g), g)];
});
binary('minimum', 'Min', Math.min, (a, b, _y, g) => {
  const m = op.lessEqual(a, b);
  return [op.where(m, g, op.zerosLike(g)), op.where(m, op.zerosLike(g), g)];
});

function compare(name: string, onnxOp: string, f: (a: number, b: number) => boolean): void {
  definePrimitive({
    name,
    infer: binaryInfer(name, 'bool'),
    lower: ({ inputs, outputs, sink }) => sink.node(onnxOp, inputs, outputs),
    evaluate: binaryEval((a, b) => (f(a, b) ? 1 : 0)),
  });
}
compare('less', 'Less', (a, b) => a < b);
compare('greater', 'Greater', (a, b) => a > b);
compare('lessEqual', 'LessOrEqual', (a, b) => a <= b);
compare('greaterEqual', 'GreaterOrEqual', (a, b) => a >= b);
compare('equal', 'Equal', (a, b) => a === b);

definePrimitive({
  name: 'where',
  infer([c, a, b]) {
    if (!c || !a || !b) throw new KinemaError('ENGINE_INVALID_GRAPH', 'where takes (cond, a, b)');
    if (c.dtype !== 'bool')
      throw new KinemaError('ENGINE_INVALID_GRAPH', `where: condition must be bool, got ${c.dtype}`);
    if (a.dtype !== b.dtype)
      throw new KinemaError('ENGINE_INVALID_GRAPH', `where: branch dtypes differ (${a.dtype} vs ${b.dtype})`);
    return [{ shape: broadcastShapes(c.shape, broadcastShapes(a.shape, b.shape)), dtype: a.dtype }];
  },
  lower: ({ inputs, outputs, sink }) => sink.node('Where', inputs, outputs),
  evaluate([c, a, b], _p, [out]) {
    const cv = toF64(c!.data, c!.dtype);
    const av = toF64(a!.data, a!.dtype);
    const bv = toF64(b!.data, b!.dtype);
    const [ic, ia, ib] = [c!, a!, b!].map((t) => broadcastIndex(t.shape, out!.shape)) as [
      Int32Array,
      Int32Array,
      Int32Array,
    ];
    const r = new Float64Array(numel(out!.shape));
    for (let i = 0; i < r.length; i++) r[i] = cv[ic[i]!] ? av[ia[i]!]! : bv[ib[i]!]!;
    return [fromF64(r, out!.dtype)];
  },
  vjp({ inputs, cotangents }) {
    const [c, a, b] = inputs as [Tensor, Tensor, Tensor];
    const g = cotangents[0]!;
    const z = op.zerosLike(g);
    return [null, op.unbroadcast(op.where(c, g, z), a.shape), op.unbroadcast(op.where(c, z, g), b.shape)];
  },
});

definePrimitive({
  name: 'cast',
  infer([x], p) {
    if (!x) throw new KinemaError('ENGINE_INVALID_GRAPH', 'cast takes one input');
    return [{ shape: x.shape, dtype: p['to'] as DType }];
  },
  lower: ({ inputs, outputs, params, sink }) =>
    sink.node('Cast', inputs, outputs, { to: attr.int(elemTypeOf(params['to'] as DType)) }),
  evaluate([x], p) {
    const to = p['to'] as DType;
    const v = toF64(x!.data, x!.dtype);
    if (to === 'float16' || to === 'bfloat16' || to === 'float32')
      return [fromF64(Float64Array.from(Float32Array.from(v)), to)];
    return [fromF64(v, to)];
  },
  vjp({ inputs, cotangents }) {
    const x = inputs[0]!;
    return [isFloat(x.dtype) ? op.cast(cotangents[0]!, x.dtype) : null];
  },
});
