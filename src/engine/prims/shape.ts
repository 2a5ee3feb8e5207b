// Shape and data-movement primitives: reshape, transpose, expand, concat, slice, pad, gather, reductions.
import { definePrimitive } from '../primitive.js';
import type { AbstractValue, HostValue } from '../primitive.js';
import type { HostData } from '../ir.js';
import { fmtShape, numel } from '../ir.js';
import { broadcastIndex, broadcastShapes, fromF64, multiIndices, normAxis, strides, toF64 } from '../host.js';
import { attr } from '../onnx/lower_ctx.js';
import type { Tensor } from '../tensor.js';
import * as op from '../ops.js';
import { KinemaError } from '../../errors.js';

const ints = (v: unknown): number[] => [...(v as readonly number[])];

function one(inputs: readonly AbstractValue[], name: string): AbstractValue {
  const x = inputs[0];
  if (!x) throw new KinemaError('ENGINE_INVALID_GRAPH', `${name} takes one input`);
  return x;
}

/** Gathers elements of `x` by a mapping from output flat index to input flat index. */
function permuteEval(
  x: HostValue,
  outShape: readonly number[],
  srcIndex: (idx: number[]) => number,
): HostData {
  const v = toF64(x.data, x.dtype);
  const r = new Float64Array(numel(outShape));
  let k = 0;
  for (const idx of multiIndices(outShape)) r[k++] = v[srcIndex(idx)]!;
  return fromF64(r, x.dtype);
}

definePrimitive({
  name: 'reshape',
  infer(inputs, p) {
    const x = one(inputs, 'reshape');
    const shape = ints(p['shape']);
    if (numel(shape) !== numel(x.shape))
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        `reshape: cannot reshape ${fmtShape(x.shape)} to ${fmtShape(shape)}`,
      );
    return [{ shape, dtype: x.dtype }];
  },
  lower: ({ inputs, outputs, params, sink }) =>
    sink.node('Reshape', [inputs[0]!, sink.constI64(ints(params['shape']))], outputs),
  evaluate: ([x]) => [x!.data],
  vjp: ({ inputs, cotangents }) => [op.reshape(cotangents[0]!, inputs[0]!.shape)],
});

definePrimitive({
  name: 'transpose',
  infer(inputs, p) {
    const x = one(inputs, 'transpose');
    const perm = ints(p['perm']);
    if (perm.length !== x.shape.length || [...perm].sort().some((v, i) => v !== i)) {
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        `transpose: bad permutation [${perm}] for rank ${x.shape.length}`,
      );
    }
    return [{ shape: perm.map((i) => x.shape[i]!), dtype: x.dtype }];
  },
  lower: ({ inputs, outputs, params, sink }) =>
    sink.node('Transpose', inputs, outputs, { perm: attr.ints(ints(params['perm'])) }),
  evaluate([x], p, [out]) {
    const perm = ints(p['perm']);
    const st = strides(x!.shape);
    return [permuteEval(x!, out!.shape, (idx) => idx.reduce((acc, v, d) => acc + v * st[perm[d]!]!, 0))];
  },
  vjp({ cotangents, params }) {
    const perm = ints(params['perm']);
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [op.transpose(cotangents[0]!, inv)];
  },
});

definePrimitive({
  name: 'expand',
  infer(inputs, p) {
    const x = one(inputs, 'expand');
    const shape = ints(p['shape']);
    const b = broadcastShapes(x.shape, shape);
    if (b.join() !== shape.join())
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        `expand: cannot broadcast ${fmtShape(x.shape)} to ${fmtShape(shape)}`,
      );
    return [{ shape, dtype: x.dtype }];
  },
  lower: ({ inputs, outputs, params, sink }) =>
    sink.node('Expand', [inputs[0]!, sink.constI64(ints(params['shape']))], outputs),
  evaluate([x], _p, [out]) {
    const v = toF64(x!.data, x!.dtype);
    const idx = broadcastIndex(x!.shape, out!.shape);
    return [
      fromF64(
        Float64Array.from(idx, (i) => v[i]!),
        x!.dtype,
      ),
    ];
  },
  vjp: ({ inputs, cotangents }) => [op.unbroadcast(cotangents[0]!, inputs[0]!.shape)],
});

definePrimitive({
  name: 'concat',
  infer(inputs, p) {
    const first = one(inputs, 'concat');
    const axis = normAxis(p['axis'] as number, first.shape.length);
    let total = 0;
    for (const t of inputs) {
      const same =
        t.shape.length === first.shape.length && t.shape.every((d, i) => i === axis || d === first.shape[i]);
      if (!same || t.dtype !== first.dtype)
        throw new KinemaError(
          'ENGINE_INVALID_GRAPH',
          `concat: ${fmtShape(t.shape)} does not match ${fmtShape(first.shape)} off axis ${axis}`,
        );
      total += t.shape[axis]!;
    }
    const shape = [...first.shape];
    shape[axis] = total;
    return [{ shape, dtype: first.dtype }];
  },
  lower: ({ inputs, outputs, params, inputAtoms, sink }) =>
    sink.node('Concat', inputs, outputs, {
      axis: attr.int(normAxis(params['axis'] as number, inputAtoms[0]!.shape.length)),
    }),
  evaluate(inputs, p, [out]) {
    const axis = normAxis(p['axis'] as number, out!.shape.length);
    const outer = numel(out!.shape.slice(0, axis));
    const inner = numel(out!.shape.slice(axis + 1));
    const r = new Float64Array(numel(out!.shape));
    const rowOut = out!.shape[axis]! * inner;
    let off = 0;
    for (const t of inputs) {
      const v = toF64(t.data, t.dtype);
      const row = t.shape[axis]! * inner;
      for (let o = 0; o < outer; o++) r.set(v.subarray(o * row, (o + 1) * row), o * rowOut + off);
      off += row;
    }
    return [fromF64(r, out!.dtype)];
  },
  vjp({ inputs, cotangents, params }) {
    const axis = normAxis(params['axis'] as number, inputs[0]!.rank);
    let start = 0;
    return inputs.map((t) => {
      const len = t.shape[axis]!;
      const g = op.slice(cotangents[0]!, [start], [start + len], [axis]);
      start += len;
      return g;
    });
  },
});

definePrimitive({
  name: 'split',
  // Splits `axis` into consecutive pieces of the given sizes (one ONNX Split); the gradient is one Concat.
  infer(inputs, p) {
    const x = one(inputs, 'split');
    const axis = normAxis(p['axis'] as number, x.shape.length);
    const sizes = ints(p['sizes']);
    if (sizes.reduce((a, b) => a + b, 0) !== x.shape[axis])
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        `split: sizes [${sizes}] do not add up to ${x.shape[axis]} on axis ${axis}`,
      );
    return sizes.map((n) => ({ shape: x.shape.map((d, i) => (i === axis ? n : d)), dtype: x.dtype }));
  },
  lower: ({ inputs, outputs, params, sink }) =>
    sink.node('Split', [inputs[0]!, sink.constI64(ints(params['sizes']))], outputs, {
      axis: attr.int(params['axis'] as number),
    }),
  evaluate([x], p, outs) {
    const axis = normAxis(p['axis'] as number, x!.shape.length);
    const v = toF64(x!.data, x!.dtype);
    const outer = numel(x!.shape.slice(0, axis));
    const inner = numel(x!.shape.slice(axis + 1));
    const row = x!.shape[axis]! * inner;
    let off = 0;
    return outs.map((o) => {
      const len = o.shape[axis]! * inner;
      const r = new Float64Array(numel(o.shape));
      for (let b = 0; b < outer; b++) r.set(v.subarray(b * row + off, b * row + off + len), b * len);
      off += len;
      return fromF64(r, o.dtype);
    });
  },
  vjp({ cotangents, params }) {
    return [op.concat(cotangents as Tensor[], params['axis'] as number)];
  },
});

interface SliceSpec {
  starts: number[];
  ends: number[];
  axes: number[];
  steps: number[];
}
function sliceSpec(p: Record<string, unknown>): SliceSpec {
  return { starts: ints(p['starts']), ends: ints(p['ends']), axes: ints(p['axes']), steps: ints(p['steps']) };
}

definePrimitive({
  name: 'slice',
  // Normalized params only: 0 <= start, end <= dim, positive steps, axes non-negative (ops.slice normalizes).
  infer(inputs, p) {
    const x = one(inputs, 'slice');
    const s = sliceSpec(p);
    const shape = [...x.shape];
    s.axes.forEach((a, i) => {
      const len = Math.max(0, Math.ceil((s.ends[i]! - s.starts[i]!) / s.steps[i]!));
      shape[a] = len;
    });
    return [{ shape, dtype: x.dtype }];
  },
  lower({ inputs, outputs, params, sink }) {
    const s = sliceSpec(params);
    sink.node(
      'Slice',
      [
        inputs[0]!,
        sink.constI64(s.starts),
        sink.constI64(s.ends),
        sink.constI64(s.axes),
        sink.constI64(s.steps),
      ],
      outputs,
    );
  },
  evaluate([x], p, [out]) {
    const s = sliceSpec(p);
    const st = strides(x!.shape);
    const start = new Array<number>(x!.shape.length).fill(0);
    const step = new Array<number>(x!.shape.length).fill(1);
    s.axes.forEach((a, i) => {
      start[a] = s.starts[i]!;
      step[a] = s.steps[i]!;
    });
    return [
      permuteEval(x!, out!.shape, (idx) =>
        idx.reduce((acc, v, d) => acc + (start[d]! + v * step[d]!) * st[d]!, 0),
      ),
    ];
  },
  vjp({ inputs, cotangents, params }) {
    const s = sliceSpec(params);
    const x = inputs[0]!;
    if (s.steps.some((v) => v !== 1))
      return [op.sliceGradStrided(cotangents[0]!, x.shape, s.starts, s.axes, s.steps)];
    const before = new Array<number>(x.rank).fill(0);
    const after = new Array<number>(x.rank).fill(0);
    s.axes.forEach((a, i) => {
      before[a] = s.starts[i]!;
      after[a] = x.shape[a]! - s.ends[i]!;
    });
    return [op.pad(cotangents[0]!, [...before, ...after])];
  },
});

definePrimitive({
  name: 'pad',
  // pads = [b0, b1, ..., e0, e1, ...] (ONNX order), non-negative, constant value.
  infer(inputs, p) {
    const x = one(inputs, 'pad');
    const pads = ints(p['pads']);
    const r = x.shape.length;
    return [{ shape: x.shape.map((d, i) => d + pads[i]! + pads[i + r]!), dtype: x.dtype }];
  },
  lower({ inputs, outputs, params, inputAtoms, sink }) {
    const value = sink.constScalar((params['value'] as number | undefined) ?? 0, inputAtoms[0]!.dtype);
    sink.node('Pad', [inputs[0]!, sink.constI64(ints(params['pads'])), value], outputs, {
      mode: attr.str('constant'),
    });
  },
  evaluate([x], p, [out]) {
    const pads = ints(p['pads']);
    const value = (p['value'] as number | undefined) ?? 0;
    const v = toF64(x!.data, x!.dtype);
    const st = strides(x!.shape);
    const r = new Float64Array(numel(out!.shape));
    let k = 0;
    for (const idx of multiIndices(out!.shape)) {
      let src = 0;
      let inside = true;
      idx.forEach((o, d) => {
        const i = o - pads[d]!;
        if (i < 0 || i >= x!.shape[d]!) inside = false;
        src += i * st[d]!;
      });
      r[k++] = inside ? v[src]! : value;
    }
    return [fromF64(r, out!.dtype)];
  },
  vjp({ inputs, cotangents, params }) {
    const x = inputs[0]!;
    const pads = ints(params['pads']);
    const axes = x.shape.map((_, i) => i);
    return [
      op.slice(
        cotangents[0]!,
        axes.map((a) => pads[a]!),
        axes.map((a) => pads[a]! + x.shape[a]!),
        axes,
      ),
    ];
  },
});

definePrimitive({
  name: 'gather',
  // Embedding-style gather along axis 0 of `table` with integer `indices` of any shape.
  infer([table, indices]) {
    if (!table || !indices) throw new KinemaError('ENGINE_INVALID_GRAPH', 'gather takes (table, indices)');
    if (indices.dtype !== 'int64' && indices.dtype !== 'int32')
      throw new KinemaError(
        'ENGINE_INVALID_GRAPH',
        `gather: indices must be int64/int32, got ${indices.dtype}`,
      );
    return [{ shape: [...indices.shape, ...table.shape.slice(1)], dtype: table.dtype }];
  },
  lower: ({ inputs, outputs, sink }) => sink.node('Gather', inputs, outputs, { axis: attr.int(0) }),
  evaluate([table, indices], _p, [out]) {
    const v = toF64(table!.data, table!.dtype);
    const idx = toF64(indices!.data, indices!.dtype);
    const row = numel(table!.shape.slice(1));
    const r = new Float64Array(numel(out!.shape));
    idx.forEach((i, k) => r.set(v.subarray(i * row, (i + 1) * row), k * row));
    return [fromF64(r, out!.dtype)];
  },
  vjp({ inputs, cotangents }) {
    const [table, indices] = inputs as [Tensor, Tensor];
    return [op.scatterAddRows(cotangents[0]!, indices, table.shape), null];
  },
});

definePrimitive({
  name: 'scatterAddRows',
  // out = zeros(shape); out[indices[k]] += updates[k] (rows along axis 0). The gradient of gather.
  infer([updates, indices], p) {
    if (!updates || !indices)
      throw new KinemaError('ENGINE_INVALID_GRAPH', 'scatterAddRows takes (updates, indices)');
    return [{ shape: ints(p['shape']), dtype: updates.dtype }];
  },
  lower({ inputs, outputs, params, inputAtoms, sink }) {
    const shape = ints(params['shape']);
    const n = numel(inputAtoms[1]!.shape);
    const zeros = sink.temp('zeros');
    sink.node('ConstantOfShape', [sink.constI64(shape)], [zeros], {
      value: { kind: 'tensor', v: { name: 'v', elemType: 1, dims: [1], raw: new Uint8Array(4) } },
    });
    const idx = sink.temp('idx');
    sink.node('Reshape', [inputs[1]!, sink.constI64([n, 1])], [idx]);
    const idx64 = sink.temp('idx64');
    sink.node('Cast', [idx], [idx64], { to: attr.int(7) });
    const upd = sink.temp('upd');
    sink.node('Reshape', [inputs[0]!, sink.constI64([n, ...shape.slice(1)])], [upd]);
    sink.node('ScatterND', [zeros, idx64, upd], outputs, { reduction: attr.str('add') });
  },
  evaluate([updates, indices], p, [out]) {
    const shape = ints(p['shape']);
    const row = numel(shape.slice(1));
    const u = toF64(updates!.data, updates!.dtype);
    const r = new Float64Array(numel(shape));
    toF64(indices!.data, indices!.dtype).forEach((i, k) => {
      for (let j = 0; j < row; j++) r[i * row + j]! += u[k * row + j]!;
    });
    return [fromF64(r, out!.dtype)];
  },
});

function reduce(name: string, onnxOp: string, init: number, f: (acc: number, v: number) => number): void {
  definePrimitive({
    name,
    infer(inputs, p) {
      const x = one(inputs, name);
      const axes = ints(p['axes']).map((a) => normAxis(a, x.shape.length));
      const keep = p['keepdims'] === true;
      const shape = keep
        ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
        : x.shape.filter((_, i) => !axes.includes(i));
      return [{ shape, dtype: x.dtype }];
    },
    lower({ inputs, outputs, params, inputAtoms, sink }) {
      const axes = ints(params['axes']).map((a) => normAxis(a, inputAtoms[0]!.shape.length));
      sink.node(onnxOp, [inputs[0]!, sink.constI64(axes)], outputs, {
        keepdims: attr.int(params['keepdims'] === true ? 1 : 0),
      });
    },
    evaluate([x], p, [out]) {
      const axes = ints(p['axes']).map((a) => normAxis(a, x!.shape.length));
      const v = toF64(x!.data, x!.dtype);
      const keepShape = x!.shape.map((d, i) => (axes.includes(i) ? 1 : d));
      const idx = broadcastIndex(keepShape, x!.shape);
      const r = new Float64Array(numel(keepShape)).fill(init);
      for (let i = 0; i < v.length; i++) r[idx[i]!] = f(r[idx[i]!]!, v[i]!);
      return [fromF64(r, out!.dtype)];
    },
    vjp({ inputs, outputs, cotangents, params }) {
      const x = inputs[0]!;
      const axes = ints(params['axes']).map((a) => normAxis(a, x.rank));
      const keepShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
      const g = op.expand(op.reshape(cotangents[0]!, keepShape), x.shape);
      if (name === 'reduceSum') return [g];
      const y = op.expand(op.reshape(outputs[0]!, keepShape), x.shape);
      return [op.where(op.equal(x, y), g, op.zerosLike(g))];
    },
  });
}
reduce('reduceSum', 'ReduceSum', 0, (a, v) => a + v);
reduce('reduceMax', 'ReduceMax', -Infinity, Math.max);
