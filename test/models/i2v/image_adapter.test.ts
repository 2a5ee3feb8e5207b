// The image-to-video adapter on a UNet3D (VideoCrafter1's decoupled image attention + resampler): untrained it
// leaves the base prediction exactly unchanged (to_v_ip starts at zero), trained it changes it, image scale 0
// removes it again, and its gradients match finite differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Tensor } from '../../../src/engine/tensor.js';
import * as op from '../../../src/engine/ops.js';
import { hostTensor } from '../../../src/engine/runtime.js';
import type { HostTensor } from '../../../src/engine/runtime.js';
import { Generator } from '../../../src/engine/random.js';
import { compileWithWeights } from '../../../src/nn/compile.js';
import type { StateDict } from '../../../src/nn/module.js';
import { UNet3DConditionModel } from '../../../src/models/unet3d/unet3d.js';
import {
  ImageAdapter,
  defaultImageAdapterConfig,
  imageAdapterConfigJson,
  parseImageAdapterConfig,
} from '../../../src/models/i2v/image_adapter.js';
import { GradStep } from '../../../src/training/trainer.js';

const TINY_UNET = {
  _class_name: 'UNet3DConditionModel',
  attention_head_dim: 4,
  block_out_channels: [8, 16],
  cross_attention_dim: 32,
  down_block_types: ['CrossAttnDownBlock3D', 'DownBlock3D'],
  up_block_types: ['UpBlock3D', 'CrossAttnUpBlock3D'],
  layers_per_block: 1,
  norm_num_groups: 4,
  sample_size: 8,
};
const [B, C, F, h, w, N, E] = [1, 4, 3, 8, 8, 5, 12];

function build() {
  const base = UNet3DConditionModel.fromConfig(TINY_UNET);
  const baseSd = base.initParameters(3);
  const adapter = new ImageAdapter(base.config, defaultImageAdapterConfig(base.config, E));
  return { base, adapter, weights: new Map([...baseSd, ...adapter.initParameters(4)]) as StateDict };
}

const g = new Generator(9);
const inputs: Record<string, HostTensor> = {
  sample: hostTensor(g.normal(B * C * F * h * w), [B, C, F, h, w]),
  timestep: hostTensor(Float32Array.of(400), [1]),
  text: hostTensor(g.normal(77 * 32), [1, 77, 32]),
  tokens: hostTensor(g.normal(B * N * E), [B, N, E]),
  scale: hostTensor(Float32Array.of(1), [B]),
};
const specs = Object.entries(inputs).map(([name, t]) => ({ name, shape: t.shape }));
type Built = ReturnType<typeof build>;
const forward = (b: Built, x: Record<string, Tensor>) =>
  b.base.forward(
    x['sample']!,
    x['timestep']!,
    x['text']!,
    b.adapter.conditioning(b.base, x['tokens']!, x['scale']!),
  );

async function run(b: Built, weights: StateDict, feeds = inputs): Promise<Float32Array> {
  const fn = (...xs: Tensor[]): Tensor =>
    forward(b, Object.fromEntries(specs.map((s, i) => [s.name, xs[i]!])));
  return (await (await compileWithWeights(fn, specs, weights)).exe.run(feeds))['out0']!.data as Float32Array;
}

const maxDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test('untrained image adapter = the base UNet; trained to_v_ip changes it; image scale 0 = the base again', async () => {
  const b = build();
  const baseOut = (await b.base.run(inputs['sample']!, inputs['timestep']!, inputs['text']!))
    .data as Float32Array;
  assert.ok(maxDiff(await run(b, b.weights), baseOut) <= 1e-6, 'zero-initialised to_v_ip: no change');
  assert.equal(b.adapter.ip.length, 4, 'one image attention per spatial cross-attention');
  const r = new Generator(2);
  const trained = new Map(
    [...b.weights].map(([k, v]) => [
      k,
      k.endsWith('to_v_ip.weight') ? r.normal(v.length).map((x) => 0.3 * x) : v,
    ]),
  );
  const moved = await run(b, trained);
  assert.ok(maxDiff(moved, baseOut) > 1e-3, `the image attention acts: ${maxDiff(moved, baseOut)}`);
  const other = {
    ...inputs,
    tokens: hostTensor(
      (inputs['tokens']!.data as Float32Array).map((v) => -v),
      [B, N, E],
    ),
  };
  assert.ok(maxDiff(await run(b, trained, other), moved) > 1e-4, 'the image matters');
  const off = { ...inputs, scale: hostTensor(Float32Array.of(0), [B]) };
  assert.ok(maxDiff(await run(b, trained, off), baseOut) <= 1e-6, 'scale 0: the base');
});

test('image adapter gradients match finite differences (resampler, to_k_ip, to_v_ip)', async () => {
  const b = build();
  const r = new Generator(8);
  const weights = new Map(
    [...b.weights].map(([k, v]) => [k, k.includes('_ip.') ? r.normal(v.length).map((x) => 0.3 * x) : v]),
  );
  const trainable = [...b.adapter.namedParameters().keys()];
  const target = hostTensor(new Generator(11).normal(B * C * F * h * w), [B, C, F, h, w]);
  const step = await GradStep.create(
    (x) => {
      const d = op.sub(forward(b, x), x['target']!);
      return op.mean(op.mul(d, d), [0, 1, 2, 3, 4]);
    },
    [...specs, { name: 'target', shape: [B, C, F, h, w] }],
    { frozen: weights, trainable },
  );
  const batch = { ...inputs, target };
  const params: StateDict = new Map(trainable.map((k) => [k, weights.get(k)!]));
  const { grads } = await step.run(params, batch);
  for (const name of [
    'ip_layers.0.to_v_ip.weight',
    'ip_layers.3.to_k_ip.weight',
    'image_proj_model.latents',
    'image_proj_model.proj_in.weight',
    'image_proj_model.layers.1.0.to_kv.weight',
  ]) {
    const gr = grads.get(name)!;
    assert.ok(gr, name);
    let k = 0;
    for (let i = 1; i < gr.length; i++) if (Math.abs(gr[i]!) > Math.abs(gr[k]!)) k = i;
    assert.ok(Math.abs(gr[k]!) > 0, `${name}: a gradient`);
    const at = async (d: number) => {
      const p = new Float32Array(params.get(name)!);
      p[k]! += d;
      return (await step.run(new Map([...params, [name, p]]), batch)).loss;
    };
    const fd = ((await at(1e-2)) - (await at(-1e-2))) / 2e-2;
    assert.ok(
      Math.abs(fd - gr[k]!) <= 0.05 * Math.abs(gr[k]!) + 1e-4,
      `${name}[${k}]: autodiff ${gr[k]}, fd ${fd}`,
    );
  }
});

test('image_adapter/config.json round-trips; bad values are named errors', () => {
  const base = UNet3DConditionModel.fromConfig(TINY_UNET);
  const c = defaultImageAdapterConfig(base.config, E);
  assert.deepEqual(parseImageAdapterConfig(imageAdapterConfigJson(c)), c);
  assert.throws(
    () =>
      parseImageAdapterConfig({
        resampler: { ...(imageAdapterConfigJson(c)['resampler'] as object), depth: 0 },
      }),
    /"resampler.depth" must be a positive integer/,
  );
  assert.throws(
    () => new ImageAdapter(base.config, { resampler: { ...c.resampler, outputDim: 8 } }),
    (e: Error & { code?: string }) => e.code === 'I2V_BAD_CONFIG',
  );
});
