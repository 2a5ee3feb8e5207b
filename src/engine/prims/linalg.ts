// Matrix multiply, softmax, layer normalization and resize.
import { definePrimitive } from '../primitive.js';
import type { AbstractValue } from '../primitive.js';
import { fmtShape, numel } from '../ir.js';
import { broadcastShapes, fromF64, normAxis, strides, toF64, multiIndices } from '../host.js';
import { attr } from '../onnx/lower_ctx.js';
import type { Tensor } from '../tensor.js';
import * as op from '../ops.js';
import { KinemaError } from '../../errors.js';

definePrimitive({
  name: 'matmul',
  infer([a, b]) {
    if (!a || !b) throw new KinemaError('ENGINE_INVALID_GRAPH', 'matmul takes two inputs');
    if (a.shape.length < 2 || b.shape.length < 2)
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        `matmul needs rank >= 2, got ${fmtShape(a.shape)} @ ${fmtShape(b.shape)}`,
      );
    const [m, k] = a.shape.slice(-2) as [number, number];
    const [k2, n] = b.shape.slice(-2) as [number, number];
    if (k !== k2)
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        `matmul: inner dimensions differ, ${fmtShape(a.shape)} @ ${fmtShape(b.shape)}`,
      );
    if (a.dtype !== b.dtype)
      throw new KinemaError('ENGINE_INVALID_GRAPH', `matmul: dtypes differ (${a.dtype} vs ${b.dtype})`);
    const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
    return [{ shape: [...batch, m, n], dtype: a.dtype }];
  },
  lower: ({ inputs, outputs, sink }) => sink.node('MatMul', inputs, outputs),
  evaluate([a, b], _p, [out]) {
    const av = toF64(a!.data, a!.dtype);
    const bv = toF64(b!.data, b!.dtype);
    const [m, k] = a!.shape.slice(-2) as [number, number];
    const n = b!.shape[b!.shape.length - 1]!;
    const batch = out!.shape.slice(0, -2);
    const aBatch = a!.shape.slice(0, -2);
    const bBatch = b!.shape.slice(0, -2);
    const r = new Float64Array(numel(out!.shape));
    let bi = 0;
    for (const idx of multiIndices(batch)) {
      const aOff = batchOffset(idx, aBatch) * m * k;
      const bOff = batchOffset(idx, bBatch) * k * n;
      const oOff = bi++ * m * n;
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let t = 0; t < k; t++) s += av[aOff + i * k + t]! * bv[bOff + t * n + j]!;
          r[oOff + i * n + j] = s;
        }
    }
    return [fromF64(r, out!.dtype)];
  },
  vjp({ inputs, cotangents }) {
    const [a, b] = inputs as [Tensor, Tensor];
    const g = cotangents[0]!;
    const ga = op.matmul(g, op.swapLast(b));
    // A 2-D right operand (a weight) shared by every batch entry: one [K, B·M] @ [B·M, N] product instead of a
    // batched product reduced over the batch afterwards.
    if (b.rank === 2 && a.rank > 2) {
      const k = a.shape[a.rank - 1]!;
      const n = g.shape[g.rank - 1]!;
      const flatA = op.reshape(op.expand(a, [...g.shape.slice(0, -1), k]), [-1, k]);
      return [op.unbroadcast(ga, a.shape), op.matmul(op.swapLast(flatA), op.reshape(g, [-1, n]))];
    }
    const gb = op.matmul(op.swapLast(a), g);
    return [op.unbroadcast(ga, a.shape), op.unbroadcast(gb, b.shape)];
  },
});

function batchOffset(idx: readonly number[], shape: readonly number[]): number {
  const st = strides(shape);
  let off = 0;
  for (let i = 0; i < shape.length; i++) {
    const d = idx[idx.length - shape.length + i]!;
    off += (shape[i] === 1 ? 0 : d) * st[i]!;
  }
  return off;
}

function lastAxisInfo(x: AbstractValue, axis: number): { outer: number; d: number; inner: number } {
  const a = normAxis(axis, x.shape.length);
  return { outer: numel(x.shape.slice(0, a)), d: x.shape[a]!, inner: numel(x.shape.slice(a + 1)) };
}

definePrimitive({
  name: 'softmax',
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  lower: ({ inputs, outputs, params, sink }) =>
    sink.node('Softmax', inputs, outputs, { axis: attr.int(params['axis'] as number) }),
  evaluate([x], p, [out]) {
    const v = toF64(x!.data, x!.dtype);
    const { outer, d, inner } = lastAxisInfo(x!, p['axis'] as number);
    const r = new Float64Array(v.length);
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < inner; i++) {
        const base = o * d * inner + i;
        let mx = -Infinity;
        for (let j = 0; j < d; j++) mx = Math.max(mx, v[base + j * inner]!);
        let s = 0;
        for (let j = 0; j < d; j++) s += r[base + j * inner] = Math.exp(v[base + j * inner]! - mx);
        for (let j = 0; j < d; j++) r[base + j * inner]! /= s;
      }
    return [fromF64(r, out!.dtype)];
  },
  vjp({ outputs, cotangents, params }) {
    const y = outputs[0]!;
    const g = cotangents[0]!;
    const axis = params['axis'] as number;
    const gy = op.mul(g, y);
    return [op.sub(gy, op.mul(y, op.sum(gy, [axis], true)))];
  },
});

definePrimitive({
  name: 'layerNorm',
  // Normalizes over the last axis without affine parameters: (x - mean) / sqrt(var + eps).
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  lower({ inputs, outputs, params, inputAtoms, sink }) {
    const x = inputAtoms[0]!;
    const d = x.shape[x.shape.length - 1]!;
    const ones = sink.temp('ln_scale');
    sink.node('ConstantOfShape', [sink.constI64([d])], [ones], {
      value: {
        kind: 'tensor',
        v: { name: 'v', elemType: 1, dims: [1], raw: new Uint8Array(new Float32Array([1]).buffer) },
      },
    });
    const scale = x.dtype === 'float32' ? ones : sink.temp('ln_scale_cast');
    if (scale !== ones) sink.node('CastLike', [ones, inputs[0]!], [scale]);
    sink.node('LayerNormalization', [inputs[0]!, scale], outputs, {
      axis: attr.int(-1),
      epsilon: attr.float(params['eps'] as number),
    });
  },
  evaluate([x], p, [out]) {
    const v = toF64(x!.data, x!.dtype);
    const d = x!.shape[x!.shape.length - 1]!;
    const eps = p['eps'] as number;
    const r = new Float64Array(v.length);
    for (let o = 0; o < v.length; o += d) {
      let mean = 0;
      for (let j = 0; j < d; j++) mean += v[o + j]!;
      mean /= d;
      let vr = 0;
      for (let j = 0; j < d; j++) vr += (v[o + j]! - mean) ** 2;
      const rstd = 1 / Math.sqrt(vr / d + eps);
      for (let j = 0; j < d; j++) r[o + j] = (v[o + j]! - mean) * rstd;
    }
    return [fromF64(r, out!.dtype)];
  },
  vjp({ inputs, outputs, cotangents, params }) {
    // dx = rstd * (g - mean(g) - y * mean(g * y)), with y the normalized output.
    const x = inputs[0]!;
    const y = outputs[0]!;
    const g = cotangents[0]!;
    const eps = params['eps'] as number;
    const centered = op.sub(x, op.mean(x, [-1], true));
    const rstd = op.rsqrt(op.add(op.mean(op.mul(centered, centered), [-1], true), eps));
    const inner = op.sub(op.sub(g, op.mean(g, [-1], true)), op.mul(y, op.mean(op.mul(g, y), [-1], true)));
    return [op.mul(rstd, inner)];
  },
});

definePrimitive({
  name: 'resize',
  // Spatial resize of [N, C, *S] to `size`: mode 'nearest' (PyTorch's default nearest: floor(dst * in / out))
  // or 'linear' (half-pixel centres, align_corners=False, no antialias).
  infer([x], p) {
    const size = p['size'] as readonly number[];
    if (size.length !== x!.shape.length - 2)
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        `resize: size [${size}] does not match ${fmtShape(x!.shape)}`,
      );
    return [{ shape: [...x!.shape.slice(0, 2), ...size], dtype: x!.dtype }];
  },
  lower({ inputs, outputs, params, inputAtoms, sink }) {
    const x = inputAtoms[0]!;
    const sizes = sink.constI64([...x.shape.slice(0, 2), ...(params['size'] as number[])]);
    const nearest = params['mode'] === 'nearest';
    sink.node('Resize', [inputs[0]!, '', '', sizes], outputs, {
      mode: attr.str(nearest ? 'nearest' : 'linear'),
      coordinate_transformation_mode: attr.str(nearest ? 'asymmetric' : 'half_pixel'),
      nearest_mode: attr.str('floor'),
    });
  },
  evaluate([x], p, [out]) {
    const v = toF64(x!.data, x!.dtype);
    const inS = x!.shape.slice(2);
    const outS = out!.shape.slice(2);
    const st = strides(x!.shape);
    const nearest = p['mode'] === 'nearest';
    const r = new Float64Array(numel(out!.shape));
    let k = 0;
    for (const idx of multiIndices(out!.shape)) {
      const base = idx[0]! * st[0]! + idx[1]! * st[1]!;
      r[k++] = nearest
        ? v[
            base +
              outS.reduce(
                (acc, o, d) =>
                  acc + Math.min(Math.floor((idx[d + 2]! * inS[d]!) / o), inS[d]! - 1) * st[d + 2]!,
                0,
              )
          ]!
        : linearSample(v, base, idx.slice(2), inS, outS, st.slice(2));
    }
    return [fromF64(r, out!.dtype)];
  },
  vjp({ inputs, cotangents, params }) {
    const x = inputs[0]!;
    if (params['mode'] !== 'nearest')
      throw new KinemaError('ENGINE_INVALID_GRAPH', 'resize: gradient is implemented for nearest mode only');
    return [op.nearestResizeGrad(cotangents[0]!, x.shape)];
  },
});

function linearSample(
  v: Float64Array,
  base: number,
  o: number[],
  inS: number[],
  outS: number[],
  st: number[],
): number {
  // Separable linear interpolation over each spatial axis (half-pixel centres, clamped at the edges).
  const corners: Array<{ off: number; w: number }> = [{ off: base, w: 1 }];
  for (let d = 0; d < inS.length; d++) {
    const src = Math.max(0, ((o[d]! + 0.5) * inS[d]!) / outS[d]! - 0.5);
    const i0 = Math.min(Math.floor(src), inS[d]! - 1);
    const i1 = Math.min(i0 + 1, inS[d]! - 1);
    const t = src - i0;
    const next: Array<{ off: number; w: number }> = [];
    for (const c of corners) {
      next.push({ off: c.off + i0 * st[d]!, w: c.w * (1 - t) });
      next.push({ off: c.off + i1 * st[d]!, w: c.w * t });
    }
    corners.splice(0, corners.length, ...next);
  }
  return corners.reduce((s, c) => s + c.w * v[c.off]!, 0);
}
