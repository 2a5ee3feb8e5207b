// Kinema extension: VideoCrafter-style fps conditioning (config fps_cond) on top of the fixture UNet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UNet3DConditionModel } from '../../../src/models/unet3d/unet3d.js';
import { sinusoidalFrequencies } from '../../../src/models/unet3d/embeddings.js';
import { compileWithWeights } from '../../../src/nn/compile.js';
import type { Tensor } from '../../../src/engine/tensor.js';
import { hostTensor } from '../../../src/engine/runtime.js';
import { Generator } from '../../../src/engine/random.js';
import type { StateDict } from '../../../src/nn/module.js';
import { UNET_DIR, compare, fmt, get, loadUNetIO } from './fixture.js';

const io = loadUNetIO();
const config = JSON.parse(readFileSync(join(UNET_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
const basePromise = UNet3DConditionModel.fromPretrained(UNET_DIR);

async function fpsModel(
  fill: (n: number) => Float32Array,
): Promise<{ model: UNet3DConditionModel; sd: StateDict }> {
  const base = await basePromise;
  const model = UNet3DConditionModel.fromConfig({ ...config, fps_cond: true });
  const sd: StateDict = new Map(base.stateDict);
  for (const [name, spec] of model.namedParameters()) {
    if (name.startsWith('fps_embedding.')) sd.set(name, fill(spec.shape.reduce((a, b) => a * b, 1)));
  }
  model.loadWeights(sd);
  return { model, sd };
}

/** Host float64 VideoCrafter fps embedding: linear_2(silu(linear_1([cos(fps·f), sin(fps·f)]))). */
function hostFpsEmbedding(sd: StateDict, fps: number): number[] {
  const args = Array.from(sinusoidalFrequencies(32, 0), (f) => Math.fround(fps * f));
  const x = [...args.map(Math.cos), ...args.map(Math.sin)];
  const linear = (inp: number[], prefix: string, nOut: number): number[] => {
    const w = sd.get(`${prefix}.weight`)!;
    const b = sd.get(`${prefix}.bias`)!;
    return Array.from({ length: nOut }, (_, o) =>
      inp.reduce((s, xi, i) => s + xi * w[o * inp.length + i]!, b[o]!),
    );
  };
  const h = linear(x, 'fps_embedding.linear_1', 128).map((v) => v / (1 + Math.exp(-v)));
  return linear(h, 'fps_embedding.linear_2', 128);
}

test('fps_cond with zero fps_embedding weights reproduces the diffusers output', async (t) => {
  const { model } = await fpsModel((n) => new Float32Array(n));
  const out = await model.run(get(io, 'sample'), get(io, 'timestep'), get(io, 'encoder_hidden_states'), {
    fps: 8,
  });
  const d = compare(out, get(io, 'out'));
  t.diagnostic(fmt('fps_cond, zero fps weights', d));
  assert.ok(d.rel <= 1e-4, fmt('out', d));
});

test('fps embedding = TimestepEmbedding(sinusoid(fps)), added to the time embedding; fps changes the output', async (t) => {
  const rng = new Generator(11);
  const { model, sd } = await fpsModel((n) => rng.uniform(n).map((v) => (v * 2 - 1) * 0.2));
  const sample = get(io, 'sample');
  const ehs = get(io, 'encoder_hidden_states');
  const fn = (x: Tensor, ts: Tensor, e: Tensor, fps: Tensor): Record<string, Tensor> => {
    const inter: Record<string, Tensor> = {};
    const out = model.forward(x, ts, e, { fps, intermediates: inter });
    return { out, fpsEmb: inter['fps_embedding']!, timeEmb: inter['time_embedding']! };
  };
  const specs = [
    { name: 'x', shape: sample.shape },
    { name: 't', shape: [2], dtype: 'int64' as const },
    { name: 'e', shape: ehs.shape },
    { name: 'fps', shape: [1] },
  ];
  const { exe } = await compileWithWeights(fn, specs, sd);
  const runAt = (fps: number) =>
    exe.run({ x: sample, t: get(io, 'timestep'), e: ehs, fps: hostTensor(Float32Array.of(fps), [1]) });
  const r8 = await runAt(8);
  const expected = hostFpsEmbedding(sd, 8);
  const emb = r8['fpsEmb']!.data as Float32Array;
  assert.deepEqual(r8['fpsEmb']!.shape, [2, 128]);
  for (let i = 0; i < 256; i++)
    assert.ok(Math.abs(emb[i]! - expected[i % 128]!) < 1e-5, `fps embedding [${i}]`);
  const d8 = compare(r8['out']!, get(io, 'out'));
  t.diagnostic(`fps 8 vs no-fps reference: max |diff| ${d8.maxAbs.toExponential(2)}`);
  assert.ok(d8.maxAbs > 1e-3, 'a nonzero fps embedding must change the output');
  const r24 = await runAt(24);
  assert.ok(
    compare(r24['out']!, r8['out']!).maxAbs > 1e-4,
    'different frame rates must give different outputs',
  );
  assert.equal(compare(r24['timeEmb']!, r8['timeEmb']!).maxAbs, 0);
});

test('fps_cond errors: no fps given; diffusers checkpoint without fps_embedding keys', async () => {
  const { model } = await fpsModel((n) => new Float32Array(n));
  await assert.rejects(
    model.run(get(io, 'sample'), 500, get(io, 'encoder_hidden_states')),
    /fps_cond; pass the frame rate/,
  );
  const strict = UNet3DConditionModel.fromConfig({ ...config, fps_cond: true });
  const base = await basePromise;
  assert.throws(() => strict.loadWeights(base.stateDict), /missing keys: fps_embedding\.linear_1\.weight/);
});
