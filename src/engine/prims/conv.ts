// N-d convolution, transposed convolution and the convolution weight gradient (im2col + MatMul lowering).
import { definePrimitive } from '../primitive.js';
import type { LowerArgs } from '../primitive.js';
import type { Params } from '../ir.js';
import { fmtShape, numel } from '../ir.js';
import { fromF64, multiIndices, strides, toF64 } from '../host.js';
import { attr } from '../onnx/lower_ctx.js';
import type { OnnxNodeSink } from '../onnx/lower_ctx.js';
import type { Tensor } from '../tensor.js';
import * as op from '../ops.js';
import { KinemaError } from '../../errors.js';

export interface ConvParams {
  strides: number[];
  pads: number[]; // [begin..., end...]
  dilations: number[];
  group: number;
}

export function convParams(p: Params): ConvParams {
  return {
    strides: [...(p['strides'] as number[])],
    pads: [...(p['pads'] as number[])],
    dilations: [...(p['dilations'] as number[])],
    group: p['group'] as number,
  };
}

function convOutSize(inS: readonly number[], k: readonly number[], c: ConvParams): number[] {
  const r = inS.length;
  return inS.map(
    (s, i) =>
      Math.floor((s + c.pads[i]! + c.pads[i + r]! - c.dilations[i]! * (k[i]! - 1) - 1) / c.strides[i]!) + 1,
  );
}

function convAttrs(c: ConvParams, kernel: readonly number[]) {
  return {
    strides: attr.ints(c.strides),
    pads: attr.ints(c.pads),
    dilations: attr.ints(c.dilations),
    group: attr.int(c.group),
    kernel_shape: attr.ints(kernel),
  };
}

/** Visits every (output position, kernel offset) pair of a convolution; `f(inOffset, outOffset, kOffset)`. */
function convLoops(
  xShape: readonly number[],
  wShape: readonly number[],
  outShape: readonly number[],
  c: ConvParams,
  f: (xi: number, oi: number, wi: number) => void,
): void {
  const [n, cin] = xShape as [number, number];
  const cout = outShape[1]!;
  const cg = cin / c.group;
  const og = cout / c.group;
  const inS = xShape.slice(2);
  const kS = wShape.slice(2);
  const outS = outShape.slice(2);
  const xs = strides(xShape);
  const ws = strides(wShape);
  const os = strides(outShape);
  const r = inS.length;
  for (let b = 0; b < n; b++)
    for (let o = 0; o < cout; o++) {
      const g = Math.floor(o / og);
      for (const oIdx of multiIndices(outS)) {
        const oi = b * os[0]! + o * os[1]! + oIdx.reduce((a, v, d) => a + v * os[d + 2]!, 0);
        for (let ci = 0; ci < cg; ci++)
          for (const kIdx of multiIndices(kS)) {
            let xi = b * xs[0]! + (g * cg + ci) * xs[1]!;
            let inside = true;
            for (let d = 0; d < r; d++) {
              const pos = oIdx[d]! * c.strides[d]! - c.pads[d]! + kIdx[d]! * c.dilations[d]!;
              if (pos < 0 || pos >= inS[d]!) inside = false;
              xi += pos * xs[d + 2]!;
            }
            if (!inside) continue;
            f(xi, oi, o * ws[0]! + ci * ws[1]! + kIdx.reduce((a, v, d) => a + v * ws[d + 2]!, 0));
          }
      }
    }
}

definePrimitive({
  name: 'conv',
  // x [N, C, *S], w [O, C/group, *K] → [N, O, *S'] (no bias; ops.conv adds it).
  infer([x, w], p) {
    if (!x || !w) throw new KinemaError('ENGINE_INVALID_GRAPH', 'conv takes (x, w)');
    const c = convParams(p);
    const r = x.shape.length - 2;
    if (w.shape.length !== r + 2)
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        `conv: weight ${fmtShape(w.shape)} does not match input ${fmtShape(x.shape)}`,
      );
    if (x.shape[1]! !== w.shape[1]! * c.group || w.shape[0]! % c.group !== 0) {
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        `conv: input channels ${x.shape[1]} do not match weight ${fmtShape(w.shape)} with group ${c.group}`,
      );
    }
    const out = convOutSize(x.shape.slice(2), w.shape.slice(2), c);
    if (out.some((d) => d <= 0))
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        `conv: input ${fmtShape(x.shape)} is too small for kernel ${fmtShape(w.shape)}`,
      );
    return [{ shape: [x.shape[0]!, w.shape[0]!, ...out], dtype: x.dtype }];
  },
  lower: ({ inputs, outputs, params, inputAtoms, sink }) =>
    sink.node('Conv', inputs, outputs, convAttrs(convParams(params), inputAtoms[1]!.shape.slice(2))),
  evaluate([x, w], p, [out]) {
    const xv = toF64(x!.data, x!.dtype);
    const wv = toF64(w!.data, w!.dtype);
    const r = new Float64Array(numel(out!.shape));
    convLoops(x!.shape, w!.shape, out!.shape, convParams(p), (xi, oi, wi) => (r[oi]! += xv[xi]! * wv[wi]!));
    return [fromF64(r, out!.dtype)];
  },
  vjp({ inputs, cotangents, params }) {
    const [x, w] = inputs as [Tensor, Tensor];
    const g = cotangents[0]!;
    const c = convParams(params);
    return [op.convTransposeTo(g, w, c, x.shape), op.convWeightGrad(x, g, c, w.shape)];
  },
});

function convTransposeOut(
  xShape: readonly number[],
  wShape: readonly number[],
  c: ConvParams,
  outPad: readonly number[],
): number[] {
  const r = xShape.length - 2;
  const spatial = xShape
    .slice(2)
    .map(
      (s, i) =>
        (s - 1) * c.strides[i]! -
        c.pads[i]! -
        c.pads[i + r]! +
        c.dilations[i]! * (wShape[i + 2]! - 1) +
        1 +
        outPad[i]!,
    );
  return [xShape[0]!, wShape[1]! * c.group, ...spatial];
}

definePrimitive({
  name: 'convTranspose',
  // x [N, Cin, *S], w [Cin, Cout/group, *K] → [N, Cout, *S'] — the adjoint of conv with the same params.
  infer([x, w], p) {
    if (!x || !w) throw new KinemaError('ENGINE_INVALID_GRAPH', 'convTranspose takes (x, w)');
    const c = convParams(p);
    if (x.shape[1] !== w.shape[0])
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        `convTranspose: input ${fmtShape(x.shape)} does not match weight ${fmtShape(w.shape)}`,
      );
    return [{ shape: convTransposeOut(x.shape, w.shape, c, p['outputPadding'] as number[]), dtype: x.dtype }];
  },
  lower: lowerConvTranspose,
  evaluate([x, w], p, [out]) {
    const xv = toF64(x!.data, x!.dtype);
    const wv = toF64(w!.data, w!.dtype);
    const r = new Float64Array(numel(out!.shape));
    // convT(x, w) is the adjoint of y ↦ conv(y, w) (which maps [N, Cout, *S'] to [N, Cin, *S]).
    convLoops(out!.shape, w!.shape, x!.shape, convParams(p), (yi, xi, wi) => (r[yi]! += xv[xi]! * wv[wi]!));
    return [fromF64(r, out!.dtype)];
  },
  vjp({ inputs, cotangents, params }) {
    const [x, w] = inputs as [Tensor, Tensor];
    const g = cotangents[0]!;
    const c = convParams(params);
    return [op.conv(g, w, { ...c }), op.convWeightGrad(g, x, c, w.shape)];
  },
});

function lowerConvTranspose({ inputs, outputs, params, inputAtoms, sink }: LowerArgs): void {
  const c = convParams(params);
  const w = inputAtoms[1]!;
  const kernel = w.shape.slice(2);
  const outPad = params['outputPadding'] as number[];
  const r = kernel.length;
  const unitStride = c.strides.every((s) => s === 1) && outPad.every((p) => p === 0);
  if (!unitStride) {
    sink.node('ConvTranspose', inputs, outputs, {
      ...convAttrs(c, kernel),
      output_padding: attr.ints(outPad),
    });
    return;
  }
  // Stride 1: a transposed conv is a conv with the kernel flipped and in/out channels swapped.
  const wConv = flipSwapWeight(sink, inputs[1]!, w.shape, c.group);
  const pads = c.pads.map((p, i) => c.dilations[i % r]! * (kernel[i % r]! - 1) - p);
  sink.node('Conv', [inputs[0]!, wConv], outputs, convAttrs({ ...c, pads }, kernel));
}

function flipSwapWeight(sink: OnnxNodeSink, w: string, shape: readonly number[], group: number): string {
  const [cin, coutG] = shape as [number, number];
  const kernel = shape.slice(2);
  const grouped = sink.temp('w_g');
  sink.node('Reshape', [w, sink.constI64([group, cin / group, coutG, ...kernel])], [grouped]);
  const swapped = sink.temp('w_swap');
  sink.node('Transpose', [grouped], [swapped], {
    perm: attr.ints([0, 2, 1, ...kernel.map((_, i) => i + 3)]),
  });
  const flat = sink.temp('w_conv');
  sink.node('Reshape', [swapped, sink.constI64([coutG * group, cin / group, ...kernel])], [flat]);
  const axes = kernel.map((_, i) => i + 2);
  const flipped = sink.temp('w_flip');
  sink.node(
    'Slice',
    [
      flat,
      sink.constI64(axes.map(() => -1)),
      sink.constI64(kernel.map((k) => -k - 1)),
      sink.constI64(axes),
      sink.constI64(axes.map(() => -1)),
    ],
    [flipped],
  );
  return flipped;
}

definePrimitive({
  name: 'convWeightGrad',
  // dW[o, c, k] = Σ_{n, i} gy[n, o, i] · x_pad[n, g·Cg + c, s·i + d·k] for y = conv(x, W).
  infer([x, gy], p) {
    if (!x || !gy) throw new KinemaError('ENGINE_INVALID_GRAPH', 'convWeightGrad takes (x, gy)');
    return [{ shape: [...(p['wshape'] as number[])], dtype: x.dtype }];
  },
  lower: lowerConvWeightGrad,
  evaluate([x, gy], p, [out]) {
    const xv = toF64(x!.data, x!.dtype);
    const gv = toF64(gy!.data, gy!.dtype);
    const r = new Float64Array(numel(out!.shape));
    convLoops(x!.shape, out!.shape, gy!.shape, convParams(p), (xi, oi, wi) => (r[wi]! += xv[xi]! * gv[oi]!));
    return [fromF64(r, out!.dtype)];
  },
});

function lowerConvWeightGrad({ inputs, outputs, params, inputAtoms, sink }: LowerArgs): void {
  const c = convParams(params);
  const [x, gy] = inputAtoms as [LowerArgs['inputAtoms'][0], LowerArgs['inputAtoms'][0]];
  const wshape = params['wshape'] as number[];
  const kernel = wshape.slice(2);
  const [n, cin] = x.shape as [number, number];
  const cout = gy.shape[1]!;
  const outS = gy.shape.slice(2);
  const oo = numel(outS);
  const kk = numel(kernel);
  const G = c.group;
  const cols = im2col(sink, inputs[0]!, x.shape, kernel, outS, c); // [N, C, KK, *outS]
  const colsG = sink.temp('cols_g');
  sink.node('Reshape', [cols, sink.constI64([n, G, (cin / G) * kk, oo])], [colsG]);
  const gyG = sink.temp('gy_g');
  sink.node('Reshape', [inputs[1]!, sink.constI64([n, G, cout / G, oo])], [gyG]);
  const gyT = sink.temp('gy_t');
  sink.node('Transpose', [gyG], [gyT], { perm: attr.ints([0, 1, 3, 2]) });
  const prod = sink.temp('dw_n');
  sink.node('MatMul', [colsG, gyT], [prod]); // [N, G, Cg·KK, Og]
  const summed = sink.temp('dw_sum');
  sink.node('ReduceSum', [prod, sink.constI64([0])], [summed], { keepdims: attr.int(0) });
  const dwT = sink.temp('dw_t');
  sink.node('Transpose', [summed], [dwT], { perm: attr.ints([0, 2, 1]) }); // [G, Og, Cg·KK]
  sink.node('Reshape', [dwT, sink.constI64(wshape)], outputs);
}

/** Patches of x for every kernel offset: [N, C, KK, *outS] (for a 1×1 unit-stride kernel, x itself). */
function im2col(
  sink: OnnxNodeSink,
  x: string,
  xShape: readonly number[],
  kernel: readonly number[],
  outS: readonly number[],
  c: ConvParams,
): string {
  const r = kernel.length;
  const trivial =
    kernel.every((k) => k === 1) && c.strides.every((s) => s === 1) && c.pads.every((p) => p === 0);
  if (trivial) {
    const out = sink.temp('cols');
    sink.node('Reshape', [x, sink.constI64([xShape[0]!, xShape[1]!, 1, ...outS])], [out]);
    return out;
  }
  let src = x;
  if (c.pads.some((p) => p !== 0)) {
    src = sink.temp('xpad');
    const pads = [0, 0, ...c.pads.slice(0, r), 0, 0, ...c.pads.slice(r)];
    sink.node('Pad', [x, sink.constI64(pads), sink.constScalar(0, 'float32')], [src], {
      mode: attr.str('constant'),
    });
  }
  const axes = kernel.map((_, i) => i + 2);
  const parts: string[] = [];
  for (const kIdx of multiIndices(kernel)) {
    const starts = kIdx.map((k, d) => k * c.dilations[d]!);
    const ends = starts.map((s, d) => s + c.strides[d]! * (outS[d]! - 1) + 1);
    const part = sink.temp('patch');
    sink.node(
      'Slice',
      [src, sink.constI64(starts), sink.constI64(ends), sink.constI64(axes), sink.constI64(c.strides)],
      [part],
    );
    const un = sink.temp('patch_u');
    sink.node('Unsqueeze', [part, sink.constI64([2])], [un]);
    parts.push(un);
  }
  const out = sink.temp('cols');
  sink.node('Concat', parts, [out], { axis: attr.int(2) });
  return out;
}
