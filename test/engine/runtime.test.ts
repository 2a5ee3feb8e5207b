import { test } from 'node:test';
import assert from 'node:assert/strict';
import { trace } from '../../src/engine/tensor.js';
import * as op from '../../src/engine/ops.js';
import { Executable, compile, hostTensor, programSignature } from '../../src/engine/runtime.js';
import { emitOnnx } from '../../src/engine/onnx/emit.js';
import { Builder, Tensor, withBuilder } from '../../src/engine/tensor.js';

function weightProgram() {
  const b = new Builder();
  return withBuilder(b, () => {
    const x = new Tensor(b.addInput('x', [2, 512], 'float32', 'input'));
    const w = new Tensor(b.weight('w', [512, 512], 'float32'));
    return b.build([{ name: 'y', atom: op.matmul(x, w).atom }]);
  });
}

test('weights as initializers: inline and as ONNX external data give the same results', async () => {
  const p = weightProgram();
  const w = Float32Array.from({ length: 512 * 512 }, (_, i) => Math.sin(i) / 16);
  const x = hostTensor(
    Float32Array.from({ length: 1024 }, (_, i) => Math.cos(i)),
    [2, 512],
  );
  const inline = await Executable.create(p, { initializers: new Map([['w', w]]) });
  const external = await Executable.create(p, { initializers: new Map([['w', w]]), externalData: true });
  assert.deepEqual(inline.feeds, ['x']);
  const a = (await inline.run({ x }))['y']!.data as Float32Array;
  const b = (await external.run({ x }))['y']!.data as Float32Array;
  assert.deepEqual(a, b);
  let expect = 0;
  for (let k = 0; k < 512; k++) expect += (x.data as Float32Array)[k]! * w[k * 512]!;
  assert.ok(Math.abs(a[0]! - expect) < 1e-4);
  // The inline model carries the weight bytes; the external one does not.
  assert.ok(emitOnnx(p, { initializers: new Map([['w', w]]) }).length > 512 * 512 * 4);
});

test('sessions are cached by graph signature; inputs are checked', async () => {
  const mk = () => trace((x) => op.exp(x!), [{ name: 'x', shape: [3] }]);
  assert.equal(programSignature(mk()), programSignature(mk()));
  assert.notEqual(
    programSignature(mk()),
    programSignature(trace((x) => op.exp(x!), [{ name: 'x', shape: [4] }])),
  );
  const e1 = await compile(mk());
  const e2 = await compile(mk());
  assert.equal(e1, e2);
  await assert.rejects(() => e1.run({}), /missing input 'x'/);
  await assert.rejects(
    () => e1.run({ x: hostTensor(new Float32Array(4), [4]) }),
    /input 'x': expected float32\[3\], got float32\[4\]/,
  );
});

test('shape errors at trace time name the shapes', () => {
  assert.throws(
    () =>
      trace(
        (a, b) => op.matmul(a!, b!),
        [
          { name: 'a', shape: [2, 3] },
          { name: 'b', shape: [4, 5] },
        ],
      ),
    /inner dimensions differ, \[2,3\] @ \[4,5\]/,
  );
  assert.throws(
    () =>
      trace(
        (a, b) => op.add(a!, b!),
        [
          { name: 'a', shape: [2, 3] },
          { name: 'b', shape: [4] },
        ],
      ),
    /shapes \[2,3\] and \[4\] do not broadcast/,
  );
});

test('casts between float32, float16 and bfloat16 round like the host conversions', async () => {
  const vals = Float32Array.from([1, 1.0009765625, 3.14159, -65504, 1e-8, 70000, 0.1]);
  const p = trace(
    (x) => [op.cast(op.cast(x!, 'float16'), 'float32'), op.cast(op.cast(x!, 'bfloat16'), 'float32')],
    [{ name: 'x', shape: [7] }],
  );
  const out = await (await compile(p)).run({ x: hostTensor(vals, [7]) });
  const f16 = out['out0']!.data as Float32Array;
  const bf16 = out['out1']!.data as Float32Array;
  assert.equal(f16[2], 3.140625);
  assert.equal(f16[5], Infinity);
  assert.equal(bf16[2], 3.140625);
  assert.equal(bf16[5], 70144);
  assert.equal(f16[6], 0.0999755859375);
});

test('attention lowered to standard ops (the webgpu lowering) equals the fused kernel and the reference', async () => {
  const { interpret } = await import('../../src/engine/interpret.js');
  const { Generator } = await import('../../src/engine/random.js');
  const specs = [
    { name: 'q', shape: [2, 20, 12] },
    { name: 'k', shape: [2, 7, 12] },
    { name: 'v', shape: [2, 7, 6] },
    { name: 'bias', shape: [1, 3, 20, 7] },
  ];
  const program = trace((q, k, v, bias) => op.multiHeadAttention(q, k, v, 3, { bias }), specs);
  const g = new Generator(11);
  const feeds = Object.fromEntries(
    specs.map((s) => [s.name, hostTensor(g.normal(s.shape.reduce((a, b) => a * b, 1)), s.shape)]),
  );
  const unfused = (await (await compile(program, { fusedAttention: false })).run(feeds))['out0']!;
  const fused = (await (await compile(program)).run(feeds))['out0']!;
  const reference = interpret(program, feeds)['out0']!;
  assert.deepEqual(unfused.shape, [2, 20, 6]);
  const bytes = emitOnnx(program, { fusedAttention: false });
  assert.ok(!new TextDecoder().decode(bytes).includes('MultiHeadAttention'), 'no fused node emitted');
  for (let i = 0; i < unfused.data.length; i++) {
    assert.ok(
      Math.abs((unfused.data[i] as number) - (reference.data[i] as number)) < 1e-5,
      `reference at ${i}`,
    );
    assert.ok(Math.abs((unfused.data[i] as number) - (fused.data[i] as number)) < 1e-5, `fused at ${i}`);
  }
});

test('a provider that cannot start gives an error naming the problem and the way out', async () => {
  const { providerError } = await import('../../src/engine/runtime.js');
  const ort = new Error('webgpu_context.cc:136 Failed to get a WebGPU adapter: No supported adapters');
  const e = providerError('webgpu', ort);
  assert.match(e.message, /webgpu execution provider found no GPU adapter .*Vulkan driver.*--device cpu/);
  assert.match(e.message, /No supported adapters/);
  assert.equal(e.cause, ort);
  assert.match(
    providerError('cuda', new Error('libonnxruntime_providers_cuda.so: cannot open')).message,
    /cuda execution provider could not start/,
  );
  const other = new Error('Invalid model');
  assert.equal(providerError('cpu', other), other);
});
