import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Tensor } from '../../../src/engine/tensor.js';
import * as op from '../../../src/engine/ops.js';
import { hostTensor } from '../../../src/engine/runtime.js';
import type { HostTensor } from '../../../src/engine/runtime.js';
import { Generator } from '../../../src/engine/random.js';
import { compileWithWeights } from '../../../src/nn/compile.js';
import type { StateDict } from '../../../src/nn/module.js';
import { attachLoRA } from '../../../src/nn/lora.js';
import { UNet3DConditionModel } from '../../../src/models/unet3d/unet3d.js';
import {
  DualStreamUNet,
  combineMotion,
  decomposeMotion,
  dualStreamConfigJson,
  motionRms,
  parseDualStreamConfig,
} from '../../../src/models/dsdn/index.js';
import type { DualStreamConfig, LatentShape } from '../../../src/models/dsdn/index.js';
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

const CONFIG: DualStreamConfig = {
  motionScale: 0.3,
  combinerGamma: 0.8,
  interactionSites: ['mid_block', 'up_blocks.0', 'up_blocks.1'],
  interactionHeads: 2,
  contentLoRA: { rank: 2, alpha: 2, targets: ['to_q', 'to_v'] },
  motionLoRA: { rank: 2, alpha: 4, targets: ['to_q', 'to_v'] },
};

const SHAPE: LatentShape = [1, 4, 3, 8, 8];
const n = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('motion decomposer then combiner gives the frame latents back, for every γ', () => {
  const z = new Generator(1).normal(n(SHAPE));
  const m = decomposeMotion(z, SHAPE, 0.3);
  const [, , f, h, w] = SHAPE;
  for (let k = 0; k < h * w; k++) assert.equal(m[k], 0, 'frame 0 has no motion');
  assert.ok(Math.abs(m[h * w]! - (z[h * w]! - z[0]!) / 0.3) < 1e-5, 'a frame difference over σ_m');
  for (const gamma of [0, 0.5, 0.8, 1]) {
    const back = combineMotion(z, m, SHAPE, 0.3, gamma);
    assert.ok(maxAbsDiff(back, z) < 1e-5, `γ ${gamma}: |Δ| ${maxAbsDiff(back, z)}`);
  }
  // When the streams disagree, γ = 0 keeps the content frames and γ = 1 integrates the motion from frame 0.
  const still = new Float32Array(z.length);
  for (let bc = 0; bc < 4; bc++)
    for (let fi = 0; fi < f; fi++)
      still.set(z.subarray(bc * f * h * w, (bc * f + 1) * h * w), (bc * f + fi) * h * w);
  assert.deepEqual(combineMotion(still, m, SHAPE, 0.3, 0), still);
  assert.ok(maxAbsDiff(combineMotion(still, m, SHAPE, 0.3, 1), z) < 1e-5);
  assert.ok(Math.abs(motionRms(z, SHAPE) - rmsOf(m) * 0.3 * Math.sqrt(f / (f - 1))) < 1e-5);
  assert.throws(() => combineMotion(z, m, SHAPE, 0.3, 1.5), /γ must be in \[0, 1\]/);
  assert.throws(() => decomposeMotion(z.subarray(1), SHAPE, 0.3), /must be \[B, C, F, h, w\]/);
});

function rmsOf(a: Float32Array): number {
  let s = 0;
  for (const v of a) s += v * v;
  return Math.sqrt(s / a.length);
}

interface Built {
  model: DualStreamUNet;
  base: UNet3DConditionModel;
  weights: StateDict;
}

/** A tiny dual-stream model on a random base, its increment units attached (B = 0) and interaction fresh. */
function build(): Built {
  const base = UNet3DConditionModel.fromConfig(TINY_UNET);
  const baseSd = base.initParameters(3);
  const model = new DualStreamUNet(base.config, CONFIG);
  const own: StateDict = new Map();
  for (const [stream, unit, seed] of [
    [model.content, CONFIG.contentLoRA, 5],
    [model.motion, CONFIG.motionLoRA, 6],
  ] as const)
    for (const [k, v] of attachLoRA(stream, { ...unit, seed }).init) own.set(k, v);
  model.interaction.forEach((b, i) => {
    for (const [k, v] of b.initParameters(10 + i)) own.set(`interaction.${i}.${k}`, v);
  });
  return { model, base, weights: DualStreamUNet.stateDictFrom(baseSd, own) };
}

const inputs = (() => {
  const g = new Generator(9);
  return {
    content: hostTensor(g.normal(n(SHAPE)), [...SHAPE]),
    motion: hostTensor(g.normal(n(SHAPE)), [...SHAPE]),
    timestep: hostTensor(Float32Array.of(500), [1]),
    context: hostTensor(g.normal(77 * 32), [1, 77, 32]),
    fps: hostTensor(Float32Array.of(8), [1]),
  };
})();
const SPECS = Object.entries(inputs).map(([name, t]) => ({ name, shape: t.shape }));

async function runDual(b: Built, weights: StateDict, interact = true): Promise<[Float32Array, Float32Array]> {
  const fn = (c: Tensor, m: Tensor, t: Tensor, ctx: Tensor, fps: Tensor): Tensor[] =>
    b.model.forward(c, m, t, ctx, { fps, interact });
  const prog = await compileWithWeights(fn, SPECS, weights);
  const out = await prog.exe.run(inputs);
  return [out['out0']!.data as Float32Array, out['out1']!.data as Float32Array];
}

function randomised(sd: StateDict, pick: (k: string) => boolean, seed: number): StateDict {
  const g = new Generator(seed);
  return new Map([...sd].map(([k, v]) => [k, pick(k) ? g.normal(v.length).map((x) => x * 0.2) : v]));
}

test('untrained DSDN parts leave both streams the base UNet: content per frame as images, motion as a video', async () => {
  const b = build();
  const [content, motion] = await runDual(b, b.weights);
  const [noInteraction] = await runDual(b, b.weights, false);
  assert.deepEqual(content, noInteraction, 'zero-initialised interaction: exactly the streams without it');
  // Motion stream = the base UNet3D on the motion features.
  const motionBase = await b.base.run(inputs.motion, inputs.timestep, inputs.context, { fps: 8 });
  assertClose(motion, motionBase.data as Float32Array, 1e-5, 'motion stream vs base UNet');
  // Content stream = the base UNet on each frame alone (a 1-frame video).
  const [, c, f, h, w] = SHAPE;
  const src = inputs.content.data as Float32Array;
  for (let fi = 0; fi < f; fi++) {
    const frame = new Float32Array(c * h * w);
    for (let ci = 0; ci < c; ci++)
      frame.set(src.subarray((ci * f + fi) * h * w, (ci * f + fi + 1) * h * w), ci * h * w);
    const out = await b.base.run(hostTensor(frame, [1, c, 1, h, w]), inputs.timestep, inputs.context, {
      fps: 8,
    });
    const o = out.data as Float32Array;
    const mine = new Float32Array(c * h * w);
    for (let ci = 0; ci < c; ci++)
      mine.set(content.subarray((ci * f + fi) * h * w, (ci * f + fi + 1) * h * w), ci * h * w);
    assertClose(mine, o, 1e-5, `content frame ${fi} vs the base UNet on that frame`);
  }
  // Trained interaction weights do change both streams (the test above can fail).
  const trained = randomised(b.weights, (k) => k.startsWith('interaction.') && k.includes('to_out'), 2);
  const [c2, m2] = await runDual(b, trained);
  assert.ok(maxAbsDiff(c2, content) > 1e-3 && maxAbsDiff(m2, motion) > 1e-3);
  // So do trained increment units, and λ = 0 takes them out again exactly.
  const lora = randomised(b.weights, (k) => k.includes('.lora_B.'), 4);
  const [c3, m3] = await runDual(b, lora);
  assert.ok(maxAbsDiff(c3, content) > 1e-4 && maxAbsDiff(m3, motion) > 1e-4);
  for (const [, br] of b.model.namedModules())
    if ('scale' in br && br.constructor.name === 'LoRABranch') (br as { scale: number }).scale = 0;
  const [c4, m4] = await runDual(b, lora);
  assert.deepEqual([c4, m4], [content, motion]);
});

test('DSDN training gradients of the interaction and increment units match finite differences', async () => {
  const b = build();
  const weights = randomised(b.weights, (k) => k.startsWith('interaction.') || k.includes('.lora_B.'), 8);
  const trainable = [...weights.keys()].filter((k) => k.startsWith('interaction.') || k.includes('.lora_'));
  const target = hostTensor(new Generator(11).normal(n(SHAPE)), [...SHAPE]);
  const specs = [...SPECS, { name: 'target', shape: [...SHAPE] }];
  const step = await GradStep.create(
    (x) => {
      const [co, mo] = b.model.forward(x['content']!, x['motion']!, x['timestep']!, x['context']!, {
        fps: x['fps']!,
      });
      const d = op.sub(op.add(co, mo), x['target']!);
      return op.mean(op.mul(d, d), [0, 1, 2, 3, 4]);
    },
    specs,
    { frozen: weights, trainable },
  );
  const batch: Record<string, HostTensor> = { ...inputs, target };
  const params: StateDict = new Map(trainable.map((k) => [k, weights.get(k)!]));
  const { grads } = await step.run(params, batch);
  const probe = [
    'interaction.0.content_from_motion.to_q.weight',
    'interaction.2.motion_from_content.to_out.0.weight',
    trainable.find((k) => k.startsWith('content.') && k.endsWith('lora_A.weight'))!,
    trainable.find((k) => k.startsWith('motion.') && k.endsWith('lora_B.weight'))!,
  ];
  const eps = 1e-2;
  for (const name of probe) {
    const g = grads.get(name)!;
    let k = 0;
    for (let i = 1; i < g.length; i++) if (Math.abs(g[i]!) > Math.abs(g[k]!)) k = i;
    const at = async (delta: number): Promise<number> => {
      const p = new Float32Array(params.get(name)!);
      p[k]! += delta;
      return (await step.run(new Map([...params, [name, p]]), batch)).loss;
    };
    const fd = ((await at(eps)) - (await at(-eps))) / (2 * eps);
    assert.ok(
      Math.abs(fd - g[k]!) <= 0.05 * Math.abs(g[k]!) + 1e-4,
      `${name}[${k}]: autodiff ${g[k]}, finite differences ${fd}`,
    );
  }
});

test('dsdn/config.json round-trips and bad values are named errors', () => {
  const json = dualStreamConfigJson(CONFIG);
  assert.deepEqual(parseDualStreamConfig(json), CONFIG);
  const bad = (patch: Record<string, unknown>, re: RegExp): void =>
    assert.throws(
      () => parseDualStreamConfig({ ...json, ...patch }),
      (e: Error & { code?: string }) => e.code === 'DSDN_BAD_CONFIG' && re.test(e.message),
    );
  bad({ motion_scale: 'big' }, /"motion_scale" must be a number/);
  bad({ motion_scale: 0 }, /must be > 0/);
  bad({ combiner_gamma: 2 }, /"combiner_gamma" must be in \[0, 1\]/);
  bad({ content_lora: { rank: 1.5, targets: ['to_q'] } }, /"rank" must be a positive integer/);
  bad({ motion_lora: { rank: 2, targets: [] } }, /"targets" must be a non-empty list/);
  const base = UNet3DConditionModel.fromConfig(TINY_UNET);
  assert.throws(
    () => new DualStreamUNet(base.config, { ...CONFIG, interactionSites: ['up_blocks.7'] }),
    /interaction site 'up_blocks.7'/,
  );
  assert.throws(
    () => new DualStreamUNet(base.config, { ...CONFIG, interactionHeads: 3 }),
    /do not split into 3 heads/,
  );
});
