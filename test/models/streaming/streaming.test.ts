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
  StreamingAdapters,
  parseStreamingConfig,
  spatialCrossAttentionBlocks,
  streamingConfigJson,
  streamingForward,
} from '../../../src/models/streaming/index.js';
import type { StreamingConfig } from '../../../src/models/streaming/index.js';
import { GradStep } from '../../../src/training/trainer.js';
import { assertClose } from '../../engine/check_op.js';

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
  fps_cond: true,
};

// Frames at twice the latent size (a VAE factor of 2: one stride-2 conv in E_cond).
const CONFIG: StreamingConfig = {
  condFrames: 2,
  condEmbeddingChannels: [4, 8],
  mergerHeads: 2,
  imageEmbedDim: 6,
  imageTokens: 3,
  textTokens: 77,
};
const [B, C, F, h, w] = [1, 4, 4, 8, 8];

function build(): { base: UNet3DConditionModel; adapters: StreamingAdapters; weights: StateDict } {
  const base = UNet3DConditionModel.fromConfig(TINY_UNET);
  const baseSd = base.initParameters(3);
  const adapters = new StreamingAdapters(base.config, CONFIG);
  const weights: StateDict = new Map([...baseSd, ...adapters.initFrom(baseSd, 5)]);
  return { base, adapters, weights };
}

const g = new Generator(9);
const inputs: Record<string, HostTensor> = {
  sample: hostTensor(g.normal(B * C * F * h * w), [B, C, F, h, w]),
  timestep: hostTensor(Float32Array.of(500), [1]),
  text: hostTensor(g.normal(77 * 32), [1, 77, 32]),
  cond: hostTensor(
    g.uniform(B * CONFIG.condFrames * 3 * 16 * 16).map((v) => 2 * v - 1),
    [B * CONFIG.condFrames, 3, 16, 16],
  ),
  image: hostTensor(g.normal(B * 6), [B, 6]),
  gate: hostTensor(Float32Array.of(1), [B]),
  fps: hostTensor(Float32Array.of(8), [1]),
};
const specs = Object.entries(inputs).map(([name, t]) => ({ name, shape: t.shape }));

const forward = (b: ReturnType<typeof build>) => (x: Record<string, Tensor>) =>
  streamingForward(b.base, b.adapters, x['sample']!, x['timestep']!, x['text']!, {
    condFrames: x['cond']!,
    imageEmbeds: x['image']!,
    gate: x['gate']!,
    fps: x['fps']!,
  });

async function run(b: ReturnType<typeof build>, weights: StateDict, feeds = inputs): Promise<Float32Array> {
  const fn = (...xs: Tensor[]): Tensor =>
    forward(b)(Object.fromEntries(specs.map((s, i) => [s.name, xs[i]!])));
  const prog = await compileWithWeights(fn, specs, weights);
  return (await prog.exe.run(feeds))['out0']!.data as Float32Array;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function randomised(sd: StateDict, pick: (k: string) => boolean, seed: number, scale = 0.3): StateDict {
  const r = new Generator(seed);
  return new Map([...sd].map(([k, v]) => [k, pick(k) ? r.normal(v.length).map((x) => x * scale) : v]));
}

test('untrained CAM + APM leave the base UNet3D prediction unchanged; trained ones change it; gate 0 removes them', async () => {
  const b = build();
  const baseOut = (await b.base.run(inputs['sample']!, inputs['timestep']!, inputs['text']!, { fps: 8 }))
    .data as Float32Array;
  const fresh = await run(b, b.weights);
  assert.ok(maxAbsDiff(fresh, baseOut) <= 1e-6, `untrained adapters: |Δ| ${maxAbsDiff(fresh, baseOut)}`);
  // The zeros are where the paper puts them: E_cond's last conv, every merger's P_out, every α_l.
  const zeroed = [...b.weights.keys()].filter(
    (k) =>
      k.startsWith('cam.controlnet_cond_embedding.conv_out.') ||
      /^cross_attention_merger_.*\.temporal_transformer\.proj_out\./.test(k) ||
      /^apm_layers\.\d+\.alpha$/.test(k),
  );
  assert.equal(zeroed.length, 2 + 2 * (b.adapters.downMergers.length + 1) + b.adapters.apmLayers.length);
  for (const k of zeroed)
    assert.ok(
      b.weights.get(k)!.every((x) => x === 0),
      `${k} starts at zero`,
    );
  // The CAM copy starts as the base's encoder half.
  assert.deepEqual(
    b.weights.get('cam.down_blocks.0.resnets.0.conv1.weight'),
    b.weights.get('down_blocks.0.resnets.0.conv1.weight'),
  );
  // Trained merger outputs (CAM) and α (APM) each change the prediction — the test above can fail.
  const cam = randomised(b.weights, (k) => /controlnet_cond_embedding\.conv_out|merger.*proj_out/.test(k), 2);
  const withCam = await run(b, cam);
  assert.ok(maxAbsDiff(withCam, baseOut) > 1e-3, `CAM changes the output: ${maxAbsDiff(withCam, baseOut)}`);
  const apm = randomised(b.weights, (k) => k.endsWith('.alpha'), 3, 2);
  const withApm = await run(b, apm);
  assert.ok(maxAbsDiff(withApm, baseOut) > 1e-3, `APM changes the output: ${maxAbsDiff(withApm, baseOut)}`);
  // The CAM reads the conditioning frames: other frames, another prediction.
  const otherFrames = {
    ...inputs,
    cond: hostTensor(
      (inputs['cond']!.data as Float32Array).map((v) => -v),
      inputs['cond']!.shape,
    ),
  };
  assert.ok(maxAbsDiff(await run(b, cam, otherFrames), withCam) > 1e-4, 'conditioning frames matter');
  // gate 0 (the frames dropped): the CAM's effect is gone, whatever it learned.
  const off = { ...inputs, gate: hostTensor(Float32Array.of(0), [B]) };
  assert.ok(maxAbsDiff(await run(b, cam, off), baseOut) <= 1e-6, 'gate 0 = no CAM');
  // The APM reads the anchor embedding: another anchor, another prediction.
  const otherAnchor = {
    ...inputs,
    image: hostTensor(
      (inputs['image']!.data as Float32Array).map((v) => -v),
      [B, 6],
    ),
  };
  assert.ok(maxAbsDiff(await run(b, apm, otherAnchor), withApm) > 1e-4, 'the anchor matters');
});

test('StreamingT2V adapter gradients match finite differences (merger, E_cond, α, mixer, resampler, CAM copy)', async () => {
  const b = build();
  const trainableKeys = [...b.weights.keys()].filter(
    (k) => !/^(down_blocks|up_blocks|mid_block|conv_|time_|fps_|transformer_in)/.test(k),
  );
  const weights = randomised(
    b.weights,
    (k) => /proj_out|conv_out|alpha$/.test(k) && trainableKeys.includes(k),
    8,
    0.3,
  );
  const target = hostTensor(new Generator(11).normal(B * C * F * h * w), [B, C, F, h, w]);
  const step = await GradStep.create(
    (x) => {
      const d = op.sub(forward(b)(x), x['target']!);
      return op.mean(op.mul(d, d), [0, 1, 2, 3, 4]);
    },
    [...specs, { name: 'target', shape: [B, C, F, h, w] }],
    { frozen: weights, trainable: trainableKeys },
  );
  const batch = { ...inputs, target };
  const params: StateDict = new Map(trainableKeys.map((k) => [k, weights.get(k)!]));
  const { grads } = await step.run(params, batch);
  const probe = [
    'cross_attention_merger_down_blocks.1.temporal_transformer.attention.to_v.weight',
    'cross_attention_merger_mid_block.temporal_transformer.proj_out.weight',
    'cam.controlnet_cond_embedding.conv_out.weight',
    'apm_layers.0.alpha',
    'apm_layers.3.conv.weight',
    'resampler.context_embedding.2.weight',
    'cam.down_blocks.0.attentions.0.proj_in.weight',
  ];
  const eps = 1e-2;
  for (const name of probe) {
    const gr = grads.get(name);
    assert.ok(gr, `a gradient for ${name}`);
    let k = 0;
    for (let i = 1; i < gr.length; i++) if (Math.abs(gr[i]!) > Math.abs(gr[k]!)) k = i;
    assert.ok(Math.abs(gr[k]!) > 0, `${name}: a non-zero gradient`);
    const at = async (delta: number): Promise<number> => {
      const p = new Float32Array(params.get(name)!);
      p[k]! += delta;
      return (await step.run(new Map([...params, [name, p]]), batch)).loss;
    };
    const fd = ((await at(eps)) - (await at(-eps))) / (2 * eps);
    assert.ok(
      Math.abs(fd - gr[k]!) <= 0.05 * Math.abs(gr[k]!) + 1e-4,
      `${name}[${k}]: autodiff ${gr[k]}, finite differences ${fd}`,
    );
  }
});

test('streaming/config.json round-trips; bad values and mismatched inputs are named errors', () => {
  assert.deepEqual(parseStreamingConfig(streamingConfigJson(CONFIG)), CONFIG);
  const bad = (patch: Record<string, unknown>, re: RegExp): void =>
    assert.throws(
      () => parseStreamingConfig({ ...streamingConfigJson(CONFIG), ...patch }),
      (e: Error & { code?: string }) => e.code === 'STREAMING_BAD_CONFIG' && re.test(e.message),
    );
  bad({ cond_frames: 0 }, /"cond_frames" must be a positive integer/);
  bad({ cond_embedding_channels: [] }, /"cond_embedding_channels"/);
  const base = UNet3DConditionModel.fromConfig(TINY_UNET);
  assert.throws(
    () => new StreamingAdapters(base.config, { ...CONFIG, mergerHeads: 3 }),
    /do not split into 3 heads/,
  );
  const a = new StreamingAdapters(base.config, CONFIG);
  assert.equal(a.apmLayers.length, spatialCrossAttentionBlocks(base).length);
  assert.equal(
    a.apmLayers.length,
    4,
    'down 1 + mid 1 + up 2 (layers_per_block + 1) spatial cross-attentions',
  );
});
