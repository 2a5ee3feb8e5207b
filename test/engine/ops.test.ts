import { test } from 'node:test';
import * as op from '../../src/engine/ops.js';
import { compile, hostTensor } from '../../src/engine/runtime.js';
import { trace } from '../../src/engine/tensor.js';
import assert from 'node:assert/strict';
import { checkOp } from './check_op.js';

const unary: Array<[string, (x: ReturnType<typeof op.exp>) => ReturnType<typeof op.exp>, boolean?]> = [
  ['neg', op.neg],
  ['exp', op.exp],
  ['log', op.log, true],
  ['sqrt', op.sqrt, true],
  ['rsqrt', op.rsqrt, true],
  ['tanh', op.tanh],
  ['erf', op.erf],
  ['sin', op.sin],
  ['cos', op.cos],
  ['sigmoid', op.sigmoid],
  ['abs', op.abs],
  ['reciprocal', op.reciprocal, true],
  ['silu', op.silu],
  ['gelu', (x) => op.gelu(x)],
  ['gelu_tanh', (x) => op.gelu(x, 'tanh')],
  ['quick_gelu', op.quickGelu],
  ['relu', op.relu],
];
for (const [name, f, positive] of unary) {
  test(`op ${name}`, () => checkOp(name, f, [[3, 5]], { positive: positive ?? false }));
}

test('op add/sub/mul with broadcasting', async () => {
  await checkOp('add', op.add, [
    [2, 3, 4],
    [3, 1],
  ]);
  await checkOp('sub', op.sub, [
    [2, 1, 4],
    [3, 1],
  ]);
  await checkOp('mul', op.mul, [[4], [2, 3, 4]]);
});
test('op div/pow', async () => {
  await checkOp(
    'div',
    op.div,
    [
      [2, 3],
      [1, 3],
    ],
    { positive: true },
  );
  await checkOp(
    'pow',
    op.pow,
    [
      [2, 3],
      [2, 3],
    ],
    { positive: true },
  );
  await checkOp('pow_scalar', (x) => op.pow(x, 3), [[2, 3]], { positive: true });
});
test('op maximum/minimum/where', async () => {
  await checkOp('maximum', op.maximum, [
    [3, 4],
    [3, 4],
  ]);
  await checkOp('minimum', op.minimum, [[3, 4], [4]]);
  await checkOp('where', (c, a, b) => op.where(op.greater(c, 0), a, b), [[3, 4], [3, 4], [4]]);
});
test('op reductions', async () => {
  await checkOp('sum', (x) => op.sum(x, [1]), [[2, 3, 4]]);
  await checkOp('sum_keep', (x) => op.sum(x, [0, 2], true), [[2, 3, 4]]);
  await checkOp('mean', (x) => op.mean(x, [-1]), [[2, 3, 4]]);
  await checkOp('max', (x) => op.max(x, [1]), [[2, 5, 3]]);
});
test('op matmul (batched, broadcast)', async () => {
  await checkOp('matmul', op.matmul, [
    [3, 4],
    [4, 5],
  ]);
  await checkOp('bmm', op.matmul, [
    [2, 3, 4],
    [2, 4, 5],
  ]);
  await checkOp('bmm_bcast', op.matmul, [
    [2, 1, 3, 4],
    [3, 4, 2],
  ]);
});
test('op shape ops', async () => {
  await checkOp('reshape', (x) => op.reshape(x, [4, -1]), [[2, 3, 4]]);
  await checkOp('transpose', (x) => op.transpose(x, [2, 0, 1]), [[2, 3, 4]]);
  await checkOp('expand', (x) => op.expand(x, [2, 3, 4]), [[3, 1]]);
  await checkOp('concat', (a, b) => op.concat([a, b, a], 1), [
    [2, 3],
    [2, 2],
  ]);
  await checkOp('slice', (x) => op.slice(x, [1, -3], [3, 5], [0, 2]), [[4, 3, 5]]);
  await checkOp('slice_step', (x) => op.slice(x, [1, 0], [4, 5], [0, 1], [2, 3]), [[5, 5]]);
  await checkOp('pad', (x) => op.pad(x, [1, 0, 2, 1], 0.5), [[2, 3]]);
  await checkOp(
    'split',
    (x) => op.mul(...(op.split(x, [2, 2], 1) as [ReturnType<typeof op.exp>, ReturnType<typeof op.exp>])),
    [[3, 4]],
  );
});
test('op gather (embedding)', async () => {
  const ids = hostTensor(BigInt64Array.from([3n, 0n, 3n, 1n, 4n, 2n]), [2, 3], 'int64');
  await checkOp(
    'gather',
    (t, i) => op.gather(t, i),
    [
      [5, 4],
      [2, 3],
    ],
    { fixed: { 1: ids } },
  );
});
test('op softmax / layer norm / group norm', async () => {
  await checkOp('softmax', (x) => op.softmax(x, -1), [[3, 6]]);
  await checkOp('softmax_axis1', (x) => op.softmax(x, 1), [[2, 4, 3]]);
  await checkOp('layer_norm', (x) => op.layerNormCore(x, 1e-5), [[3, 8]]);
  await checkOp('group_norm', (x) => op.groupNormCore(x, 2, 1e-6), [[2, 4, 3, 3]]);
});
test('op l2Normalize: gradients; rows come out with unit norm', async () => {
  await checkOp('l2_normalize', (x) => op.l2Normalize(x, 1), [[3, 5]]);
  await checkOp('l2_normalize_eps', (x) => op.l2Normalize(x, 0, 1e-12), [[4, 2]]);
  const prog = trace((x) => op.l2Normalize(x, 1), [{ name: 'x', shape: [2, 2] }]);
  const out = await (await compile(prog)).run({ x: hostTensor(Float32Array.from([3, 4, -5, 12]), [2, 2]) });
  const got = Array.from(out['out0']!.data as Float32Array);
  [0.6, 0.8, -5 / 13, 12 / 13].forEach((want, i) =>
    assert.ok(Math.abs(got[i]! - want) < 1e-6, `element ${i}`),
  );
});
test('op logSumExp: gradients, and stable values where exp overflows float32', async () => {
  await checkOp('log_sum_exp', (x) => op.logSumExp(x, 1), [[3, 5]]);
  await checkOp('log_sum_exp_axis0', (x) => op.logSumExp(x, 0), [[4, 2, 3]]);
  // Rows far beyond exp's float32 range (e^100 overflows): log Σ e^x = m + log Σ e^(x−m) in float64.
  const rows = [
    [100, 101, 99],
    [-1000, -1001, -1002],
    [0.5, -2, 3],
  ];
  const prog = trace((x) => op.logSumExp(x, 1), [{ name: 'x', shape: [3, 3] }]);
  const out = await (await compile(prog)).run({ x: hostTensor(Float32Array.from(rows.flat()), [3, 3]) });
  const got = out['out0']!;
  assert.deepEqual(got.shape, [3, 1]);
  rows.forEach((r, i) => {
    const m = Math.max(...r);
    const want = m + Math.log(r.reduce((a, v) => a + Math.exp(v - m), 0));
    assert.ok(
      Math.abs((got.data as Float32Array)[i]! - want) < 1e-4 * Math.max(1, Math.abs(want)),
      `row ${i}`,
    );
  });
});
test('op conv 2d (stride, padding, dilation, groups)', async () => {
  await checkOp(
    'conv2d',
    (x, w) => op.conv(x, w, { pads: [1, 1, 1, 1] }),
    [
      [2, 3, 5, 5],
      [4, 3, 3, 3],
    ],
    { fdSamples: 12 },
  );
  await checkOp(
    'conv2d_s2',
    (x, w) => op.conv(x, w, { strides: [2, 2], pads: [1, 0, 1, 1] }),
    [
      [1, 4, 6, 5],
      [2, 2, 3, 3],
    ]
      .map((s, i) => (i === 1 ? [6, 2, 3, 3] : s))
      .slice(0, 1)
      .concat([[6, 4, 3, 3]]),
    { fdSamples: 12 },
  );
  await checkOp(
    'conv2d_dil_grp',
    (x, w) => op.conv(x, w, { dilations: [2, 1], pads: [2, 1, 2, 1], group: 2 }),
    [
      [1, 4, 6, 5],
      [6, 2, 3, 3],
    ],
    { fdSamples: 12 },
  );
  await checkOp(
    'conv2d_1x1',
    (x, w) => op.conv(x, w),
    [
      [2, 3, 4, 4],
      [5, 3, 1, 1],
    ],
    { fdSamples: 12 },
  );
});
test('op conv 1d and 3d', async () => {
  await checkOp(
    'conv1d',
    (x, w) => op.conv(x, w, { pads: [1, 1] }),
    [
      [2, 3, 7],
      [4, 3, 3],
    ],
    { fdSamples: 12 },
  );
  await checkOp(
    'conv3d_temporal',
    (x, w) => op.conv(x, w, { pads: [1, 0, 0, 1, 0, 0] }),
    [
      [1, 3, 4, 3, 3],
      [2, 3, 3, 1, 1],
    ],
    { fdSamples: 12 },
  );
  await checkOp(
    'conv3d',
    (x, w) => op.conv(x, w, { pads: [1, 1, 1, 1, 1, 1], strides: [1, 2, 2] }),
    [
      [1, 2, 3, 4, 4],
      [2, 2, 3, 3, 3],
    ],
    { fdSamples: 12 },
  );
});
test('op conv transpose', async () => {
  const params = { strides: [2, 2], pads: [1, 1, 1, 1], dilations: [1, 1], group: 1 };
  await checkOp(
    'conv_transpose_s2',
    (x, w) => op.convTransposeTo(x, w, params, [1, 4, 7, 7]),
    [
      [1, 3, 4, 4],
      [3, 4, 3, 3],
    ],
    { fdSamples: 12 },
  );
  const unit = { strides: [1, 1], pads: [1, 0, 1, 0], dilations: [1, 1], group: 2 };
  await checkOp(
    'conv_transpose_s1_grp',
    (x, w) => op.convTransposeTo(x, w, unit, [1, 6, 5, 6]),
    [
      [1, 4, 5, 4],
      [4, 3, 3, 3],
    ],
    { fdSamples: 12 },
  );
});
test('op resize', async () => {
  await checkOp('resize_nearest', (x) => op.resize(x, [6, 4], 'nearest'), [[1, 2, 3, 2]]);
  await checkOp('resize_nearest_3d', (x) => op.resize(x, [2, 4, 4], 'nearest'), [[1, 2, 2, 2, 2]]);
  await checkOp('resize_linear', (x) => op.resize(x, [7, 5], 'linear'), [[1, 2, 3, 4]], { grad: false });
});
test('op attention', async () => {
  await checkOp('attention', (q, k, v) => op.attention(q, k, v), [
    [2, 3, 4],
    [2, 5, 4],
    [2, 5, 4],
  ]);
});
test('op cast round trip through float16', async () => {
  await checkOp('cast_f16', (x) => op.cast(op.cast(x, 'float16'), 'float32'), [[4, 4]], { grad: false });
});
test('op multi-head attention (packed heads, with and without bias)', async () => {
  await checkOp('mha', (q, k, v) => op.multiHeadAttention(q, k, v, 2), [
    [2, 3, 8],
    [2, 5, 8],
    [2, 5, 6],
  ]);
  await checkOp('mha_bias', (q, k, v, b) => op.multiHeadAttention(q, k, v, 2, { bias: b }), [
    [2, 3, 8],
    [2, 5, 8],
    [2, 5, 8],
    [1, 2, 3, 5],
  ]);
  await checkOp('attention_mask', (q, k, v, m) => op.attention(q, k, v, { mask: m }), [
    [2, 3, 4],
    [2, 5, 4],
    [2, 5, 4],
    [3, 5],
  ]);
});
test('op split (one output unused) and matmul with a shared 2-D weight', async () => {
  await checkOp('split3', (x) => op.mul(op.split(x, [1, 2, 3], 1)[2]!, 2), [[2, 6, 3]]);
  await checkOp(
    'chunk_both',
    (x) => op.sub(...(op.chunk(x, 2, -1) as [ReturnType<typeof op.exp>, ReturnType<typeof op.exp>])),
    [[3, 4]],
  );
  await checkOp('matmul_weight', op.matmul, [
    [2, 3, 4],
    [4, 5],
  ]);
  await checkOp('matmul_weight_4d', op.matmul, [
    [2, 2, 3, 4],
    [4, 5],
  ]);
});
