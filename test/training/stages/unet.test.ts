// The UNet stage on a tiny config with the tiny parity text encoder and VAE: the loss falls, a run stopped
// half way resumes onto the identical loss curve, and the export is a loadable fp16 diffusers folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SafetensorsFile } from '../../../src/io/safetensors.js';
import { loadStateDict } from '../../../src/io/model_folder.js';
import { f16ToF32, f32ToF16 } from '../../../src/io/half.js';
import { loadLatestCheckpoint } from '../../../src/training/checkpoint.js';
import { UNet3DConditionModel } from '../../../src/models/unet3d/unet3d.js';
import { TextToVideoPipeline } from '../../../src/pipelines/text_to_video.js';
import { CLIPTextModel } from '../../../src/models/clip/text_model.js';
import { CLIPTokenizer } from '../../../src/models/clip/tokenizer.js';
import {
  UnetTrainingData,
  clipLoss,
  createUnetStage,
  exportUnetCheckpoint,
  resolveUnetSettings,
  shiftedTime,
  trainingTimestep,
  TEXT_ENCODER_PREFIX,
  TEXT_PROBE_PREFIX,
  TRAIN_SCHEDULER_CONFIG,
  trainSchedulerConfig,
  unetConfigFor,
  worldSource,
} from '../../../src/training/stages/unet.js';
import { worldSample } from '../../../src/training/data/world.js';
import type { HostTensor } from '../../../src/engine/runtime.js';
import type { ClipSource, UnetStageSettings } from '../../../src/training/stages/unet.js';
import type { StageOptions } from '../../../src/training/stages/common.js';
import { DDPMScheduler } from '../../../src/schedulers/ddpm.js';
import { trace } from '../../../src/engine/tensor.js';
import { compile, hostTensor } from '../../../src/engine/runtime.js';
import { Generator } from '../../../src/engine/random.js';

const FIX = resolve(process.cwd(), '../shared/fixtures/parity');

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

const COLOURS: Record<string, [number, number, number]> = { red: [230, 30, 30], green: [30, 200, 40] };

/** A 4×4 square of one colour moving left or right over a grey background (stills in image mode). */
const squares: ClipSource = (index, { width, height, frames, imageMode }) => {
  const colour = index % 2 === 0 ? 'red' : 'green';
  const dir = Math.floor(index / 2) % 2 === 0 ? 1 : -1;
  const rgb = COLOURS[colour]!;
  const out: Uint8Array[] = [];
  for (let f = 0; f < frames; f++) {
    const img = new Uint8Array(width * height * 3).fill(128);
    const x0 = imageMode ? (index * 5 + f * 3) % (width - 4) : 6 + dir * 2 * f;
    for (let y = 6; y < 10; y++)
      for (let x = x0; x < x0 + 4; x++) img.set(rgb, (y * width + ((x + width) % width)) * 3);
    out.push(img);
  }
  const caption = imageMode ? `a ${colour} square` : `a ${colour} square moves ${dir > 0 ? 'right' : 'left'}`;
  return { caption, frames: out };
};

function componentsDir(root: string): string {
  const dir = join(root, 'components');
  mkdirSync(dir);
  for (const c of ['tokenizer', 'text_encoder', 'vae']) symlinkSync(join(FIX, c), join(dir, c));
  return dir;
}

/** Collects the stage's log lines instead of printing them. */
function quietLog(lines: string[]): StageOptions['log'] {
  return { write: (chunk: string) => (lines.push(chunk), true) };
}

/** Frames of a 2-frame 16×16 video that a pipeline generates in 2 steps. */
async function framesGenerated(pipe: TextToVideoPipeline): Promise<number> {
  let frames = 0;
  for await (const e of pipe.generate({
    prompt: 'a red square moves left',
    numFrames: 2,
    height: 16,
    width: 16,
    numInferenceSteps: 2,
  }))
    if (e.kind === 'done') frames = e.frames.length;
  return frames;
}

/** The text-encoder tests' tiny setup: 2-frame 16×16 clips of squares, 1 still, the tiny UNet. */
function tinySettings(root: string, extra: Partial<UnetStageSettings> = {}): UnetStageSettings {
  return {
    componentsDir: componentsDir(root),
    source: squares,
    frames: 2,
    width: 16,
    height: 16,
    images: 1,
    warmupSteps: 1,
    unetConfig: TINY_UNET,
    ...extra,
  };
}

/** Largest absolute element difference. */
function maxDiff(a: Float32Array, b: Float32Array): number {
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
}

/** A short run (batch 1, seed 1) that checkpoints only at its last step, logging into `lines`. */
function shortRun(out: string, steps: number, lines: string[]): StageOptions {
  return { out, steps, batch: 1, lr: 3e-3, seed: 1, checkpointEvery: steps, log: quietLog(lines) };
}

test('UNet stage: loss falls, a stopped run resumes exactly, the export loads as a pipeline', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-unet-stage-'));
  try {
    const settings: UnetStageSettings = {
      componentsDir: componentsDir(root),
      source: squares,
      frames: 4,
      width: 16,
      height: 16,
      warmupSteps: 5,
      images: 1,
      unetConfig: TINY_UNET,
      predictionType: 'epsilon',
    };
    const stage = createUnetStage(settings);
    const lines: string[] = [];
    const base: StageOptions = {
      out: join(root, 'full'),
      steps: 40,
      batch: 2,
      lr: 3e-3,
      seed: 7,
      checkpointEvery: 10,
      log: quietLog(lines),
    };
    const full = await stage.run(base);
    assert.equal(full.completed, true);
    assert.equal(full.losses.length, 40);
    assert.match(lines.join(''), /measured \d+\.\d+ s\/step/);
    assert.ok(existsSync(join(base.out, 'loss.png')));
    const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(full.losses.slice(0, 8));
    const last = mean(full.losses.slice(-8));
    assert.ok(last < 0.7 * first, `loss should fall: first ${first}, last ${last}`);

    const split = { ...base, out: join(root, 'split') };
    let calls = 0;
    const part1 = await stage.run({ ...split, shouldStop: () => ++calls >= 13 });
    assert.equal(part1.completed, false);
    assert.equal(part1.step, 13);
    const part2 = await stage.run(split);
    assert.equal(part2.completed, true);
    assert.deepEqual(part2.losses, full.losses, 'resumed loss curve must be identical');

    // Export: EMA weights in fp16, plus the scheduler and model_index of the pipeline folder — only into a
    // folder holding the very components the UNet was trained with.
    const model = join(root, 'model');
    mkdirSync(join(model, 'vae'), { recursive: true });
    for (const c of ['tokenizer', 'text_encoder']) symlinkSync(join(FIX, c), join(model, c));
    const vaeWeights = 'diffusion_pytorch_model.safetensors';
    symlinkSync(join(FIX, 'vae', vaeWeights), join(model, 'vae', vaeWeights));
    const vaeConfig = JSON.parse(readFileSync(join(FIX, 'vae', 'config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    writeFileSync(join(model, 'vae', 'config.json'), JSON.stringify({ ...vaeConfig, scaling_factor: 0.5 }));
    assert.throws(
      () => exportUnetCheckpoint(base.out, model),
      /vae differ from the one\(s\) the UNet was trained with/,
    );
    rmSync(join(model, 'vae', 'config.json'));
    symlinkSync(join(FIX, 'vae', 'config.json'), join(model, 'vae', 'config.json'));
    assert.equal(exportUnetCheckpoint(base.out, model), 40);
    const ema = loadLatestCheckpoint(join(base.out, 'checkpoints'))!.ema!.stateDict();
    const file = SafetensorsFile.open(join(model, 'unet', 'diffusion_pytorch_model.safetensors'));
    try {
      const name = 'conv_out.weight';
      assert.equal(file.info(name).dtype, 'F16');
      assert.deepEqual(file.readFloat32(name), f16ToF32(f32ToF16(ema.get(name)!)));
    } finally {
      file.close();
    }
    const index = JSON.parse(readFileSync(join(model, 'model_index.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.deepEqual(index['unet'], ['diffusers', 'UNet3DConditionModel']);
    const unet = await UNet3DConditionModel.fromPretrained(join(model, 'unet'));
    assert.equal(unet.config.fpsCond, true);
    const pipe = await TextToVideoPipeline.fromPretrained(model);
    assert.equal(pipe.components.scheduler.constructor.name, 'DDIMScheduler');
    assert.equal(pipe.components.scheduler.config.predictionType, 'epsilon');
    assert.equal(await framesGenerated(pipe), 2);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("UNet stage: the UNet's channels and sample size follow the VAE's latents", () => {
  const config = { ...TINY_UNET, in_channels: 4, out_channels: 4, sample_size: 16 };
  const c = unetConfigFor(config, [3, 8, 16, 8, 8], { block_out_channels: [8, 16] });
  assert.equal(c['in_channels'], 8);
  assert.equal(c['out_channels'], 8);
  assert.equal(c['sample_size'], 8);
  assert.deepEqual(c['block_out_channels'], [8, 16]);
  assert.equal(config.in_channels, 4, 'the input config is not changed');
  assert.deepEqual(unetConfigFor(config, [3, 8, 16, 8, 8], { out_channels: 8, sample_size: 8 }), c);
  assert.throws(
    () => unetConfigFor(config, [3, 8, 16, 8, 8], { out_channels: 4 }),
    /the config sets out_channels 4, but the components' VAE gives 8 \(latents 8×8×8\)/,
  );
  assert.throws(() => unetConfigFor(config, [3, 8, 16, 8, 4], {}), /latent frames must be square, got 8×4/);
});

test('UNet stage: a mismatched text encoder width or missing components fail with a clear message', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-unet-stage-'));
  try {
    const settings: UnetStageSettings = {
      componentsDir: componentsDir(root),
      source: squares,
      width: 16,
      height: 16,
      unetConfig: TINY_UNET,
    };
    const opts: StageOptions = {
      out: join(root, 'run'),
      steps: 1,
      batch: 1,
      lr: 1e-3,
      seed: 0,
      checkpointEvery: 1,
    };
    await assert.rejects(
      createUnetStage({ ...settings, unetConfig: { ...TINY_UNET, cross_attention_dim: 64 } }).run(opts),
      /cross_attention_dim 64 differs from the text encoder's hidden size 32/,
    );
    await assert.rejects(
      createUnetStage(settings).run({ ...opts, configOverrides: { in_channels: 3 } }),
      /the config sets in_channels 3, but the components' VAE gives 4 \(latents 4×8×8\)/,
    );
    await assert.rejects(
      createUnetStage({ ...settings, componentsDir: join(root, 'nothing') }).run(opts),
      /has no tokenizer\/ folder/,
    );
    await assert.rejects(
      createUnetStage({ ...settings, width: 15 }).run(opts),
      /not divisible by the VAE factor/,
    );
    assert.throws(() => exportUnetCheckpoint(join(root, 'run'), join(root, 'm')), /no checkpoint/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('UNet stage: the v target and the noise target describe the same noisy latents', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-unet-stage-'));
  try {
    const dir = componentsDir(root);
    const common = { source: squares, frames: 2, width: 16, height: 16, images: 1 };
    const load = (predictionType: 'epsilon' | 'v_prediction'): Promise<UnetTrainingData> =>
      UnetTrainingData.load(dir, squares, resolveUnetSettings({ ...common, predictionType }, 2, 3));
    const [eps, v] = await Promise.all([load('epsilon'), load('v_prediction')]);
    const alphas = DDPMScheduler.fromConfig({ ...TRAIN_SCHEDULER_CONFIG }).alphasCumprod;
    for (const prefix of ['', 'image_']) {
      const a = await eps.batch(5);
      const b = await v.batch(5);
      const noisy = b[`${prefix}noisy`]!.data as Float32Array;
      assert.deepEqual(noisy, a[`${prefix}noisy`]!.data, 'same step, same noisy latents');
      const ts = Array.from(b[`${prefix}timestep`]!.data as Float32Array);
      const target = b[`${prefix}target`]!.data as Float32Array;
      const noise = a[`${prefix}target`]!.data as Float32Array;
      const per = noisy.length / ts.length;
      let worst = 0;
      for (let i = 0; i < noisy.length; i++) {
        const ac = alphas[ts[Math.floor(i / per)]!]!;
        // x_t = √ᾱ x0 + √(1−ᾱ) ε and v = √ᾱ ε − √(1−ᾱ) x0  ⇒  ε = √(1−ᾱ) x_t + √ᾱ v
        const recovered = Math.sqrt(1 - ac) * noisy[i]! + Math.sqrt(ac) * target[i]!;
        worst = Math.max(worst, Math.abs(recovered - noise[i]!));
      }
      assert.ok(worst < 1e-5, `${prefix || 'clip '}noise recovered from v within ${worst}`);
    }
    assert.equal(resolveUnetSettings({}, 1, 0).predictionType, 'v_prediction', 'the default');
    assert.throws(
      () => resolveUnetSettings({ predictionType: 'sample' as 'epsilon' }, 1, 0),
      /predictionType must be 'epsilon' or 'v_prediction'/,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('UNet stage: timestepShift moves the same draws to higher noise (SD3 shift), 1 is uniform', async () => {
  assert.equal(shiftedTime(0.3, 1), 0.3);
  assert.equal(shiftedTime(0, 3), 0);
  assert.ok(Math.abs(shiftedTime(0.75, 3) - 0.9) < 1e-12);
  assert.ok(Math.abs(shiftedTime(0.5, 1 / 3) - 0.25) < 1e-12);
  assert.equal(resolveUnetSettings({ timestepShift: 1 }, 1, 0).timestepShift, undefined);
  assert.throws(
    () => resolveUnetSettings({ timestepShift: 0 }, 1, 0),
    /timestepShift must be a positive number/,
  );
  const root = mkdtempSync(join(tmpdir(), 'kinema-unet-stage-'));
  try {
    const dir = componentsDir(root);
    const common = { source: squares, frames: 2, width: 16, height: 16, images: 1 };
    const load = (timestepShift: number): Promise<UnetTrainingData> =>
      UnetTrainingData.load(dir, squares, resolveUnetSettings({ ...common, timestepShift }, 4, 3));
    const [plain, shifted] = await Promise.all([load(1), load(3)]);
    const [a, b]: number[][] = [[], []];
    for (let step = 0; step < 60; step++) {
      const [x, y] = [await plain.batch(step), await shifted.batch(step)];
      for (const prefix of ['', 'image_']) {
        a.push(...(x[`${prefix}timestep`]!.data as Float32Array));
        b.push(...(y[`${prefix}timestep`]!.data as Float32Array));
      }
    }
    // t = ⌊1000·u⌋ and ⌊1000·shift(u)⌋ of the same u: never lower, and a quarter (not a tenth) at t ≥ 900.
    assert.ok(a.every((t, i) => b[i]! >= t && b[i]! <= Math.ceil(1000 * shiftedTime((t + 1) / 1000, 3))));
    const high = (ts: number[]): number => ts.filter((t) => t >= 900).length / ts.length;
    assert.ok(high(a) < 0.16 && high(b) > 0.18 && high(b) < 0.33, `t ≥ 900: ${high(a)} → ${high(b)}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('UNet stage: terminalShare trains that share of the samples at t = T − 1, the rest keep their law', async () => {
  assert.equal(trainingTimestep(0.1, 1000, 1, 0.3), 999);
  assert.equal(trainingTimestep(0.3, 1000, 1, 0.3), 0, 'the rest is rescaled to start at 0');
  assert.equal(trainingTimestep(0.65, 1000, 1, 0.3), 500);
  assert.equal(trainingTimestep(0.65, 1000, 1, 0), 650, 'share 0 is the plain law');
  assert.equal(trainingTimestep(0.65, 1000, 3, 0), Math.floor(shiftedTime(0.65, 3) * 1000));
  assert.equal(resolveUnetSettings({ terminalShare: 0 }, 1, 0).terminalShare, undefined);
  assert.throws(() => resolveUnetSettings({ terminalShare: 1 }, 1, 0), /terminalShare must be in \[0, 1\)/);
  const root = mkdtempSync(join(tmpdir(), 'kinema-unet-stage-'));
  try {
    const dir = componentsDir(root);
    const common = { source: squares, frames: 2, width: 16, height: 16, images: 1 };
    const data = await UnetTrainingData.load(
      dir,
      squares,
      resolveUnetSettings({ ...common, terminalShare: 0.3 }, 4, 3),
    );
    const ts: number[] = [];
    for (let step = 0; step < 60; step++) {
      const x = await data.batch(step);
      for (const prefix of ['', 'image_']) ts.push(...(x[`${prefix}timestep`]!.data as Float32Array));
    }
    const terminal = ts.filter((t) => t === 999).length / ts.length;
    assert.ok(terminal > 0.2 && terminal < 0.4, `share at t = 999: ${terminal}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('UNet stage: trackCentring reaches the world source; 1 is the default and is not recorded', async () => {
  assert.equal(resolveUnetSettings({ trackCentring: 1 }, 1, 0).trackCentring, undefined);
  assert.equal(resolveUnetSettings({ trackCentring: 0.25 }, 1, 0).trackCentring, 0.25);
  assert.throws(() => resolveUnetSettings({ trackCentring: 0 }, 1, 0), /trackCentring must be .* \(0, 1\]/);
  const request = { width: 16, height: 16, frames: 4, imageMode: false };
  for (const k of [1, 0.25]) {
    const world = worldSample(5, 11, { ...request, split: 'train', trackCentring: k });
    assert.deepEqual(await worldSource(5, k)(11, request), {
      caption: world.caption,
      frames: world.frames,
    });
  }
  let moved = 0;
  for (let i = 0; i < 20; i++) {
    const [a, b] = [await worldSource(5)(i, request), await worldSource(5, 0.25)(i, request)];
    if (JSON.stringify(a.frames) !== JSON.stringify(b.frames)) moved++;
  }
  assert.ok(moved > 0, 'some clips start elsewhere');
});

test('UNet stage: the motion term adds β·(1−ᾱ_t) × the mean square of the frame-varying part of the error', async () => {
  const shape = [2, 3, 4, 2, 5];
  const n = shape.reduce((a, b) => a * b, 1);
  const rng = new Generator(7);
  const out = rng.normal(n);
  const target = rng.normal(n);
  const weights = Float32Array.from([0.5, 3]);
  const specs = [
    { name: 'out', shape },
    { name: 'target', shape },
    { name: 'w', shape: [2] },
  ];
  const withMotion = await compile(trace((o, t, w) => clipLoss(o, t, w!), specs));
  const plain = await compile(trace((o, t) => clipLoss(o, t, null), specs.slice(0, 2)));
  const feeds = { out: hostTensor(out, shape), target: hostTensor(target, shape) };
  const got = (await withMotion.run({ ...feeds, w: hostTensor(weights, [2]) }))['out0']!.data as Float32Array;
  const base = (await plain.run(feeds))['out0']!.data as Float32Array;
  // float64 reference: per clip, channel and pixel, the error minus its mean over the 4 frames
  const [b, c, f, h, w] = shape as [number, number, number, number, number];
  let mse = 0;
  let motion = 0;
  for (let bi = 0; bi < b; bi++) {
    let r2 = 0;
    for (let ci = 0; ci < c; ci++)
      for (let k = 0; k < h * w; k++) {
        const at = (fi: number): number => ((bi * c + ci) * f + fi) * h * w + k;
        let m = 0;
        for (let fi = 0; fi < f; fi++) m += (out[at(fi)]! - target[at(fi)]!) / f;
        for (let fi = 0; fi < f; fi++) {
          const d = out[at(fi)]! - target[at(fi)]!;
          mse += (d * d) / n;
          r2 += (d - m) ** 2;
        }
      }
    motion += (weights[bi]! * r2) / (n / b) / b;
  }
  assert.ok(Math.abs(base[0]! - mse) < 1e-5 * mse, `plain loss ${base[0]} vs ${mse}`);
  assert.ok(motion > 0.1, 'the reference term is not negligible');
  assert.ok(Math.abs(got[0]! - (mse + motion)) < 1e-5 * (mse + motion), `loss ${got[0]} vs ${mse + motion}`);
  // an error that is the same in every frame has no motion part
  const still = target.map((x, i) => x + 0.3 + out[i % (h * w)]!);
  const same = (
    await withMotion.run({ out: hostTensor(still, shape), target: feeds.target, w: hostTensor(weights, [2]) })
  )['out0']!.data as Float32Array;
  const sameBase = (await plain.run({ out: hostTensor(still, shape), target: feeds.target }))['out0']!
    .data as Float32Array;
  assert.ok(Math.abs(same[0]! - sameBase[0]!) < 1e-6, 'a frame-constant error adds no motion term');

  // the stage feeds the clips (not the stills) their weights β·(1−ᾱ_t)
  const root = mkdtempSync(join(tmpdir(), 'kinema-unet-stage-'));
  try {
    const dir = componentsDir(root);
    const common = { source: squares, frames: 3, width: 16, height: 16, images: 1 };
    const data = await UnetTrainingData.load(
      dir,
      squares,
      resolveUnetSettings({ ...common, motionWeight: 5 }, 2, 3),
    );
    const feedsOf = await data.batch(2);
    const alphas = DDPMScheduler.fromConfig({ ...TRAIN_SCHEDULER_CONFIG }).alphasCumprod;
    const ts = Array.from(feedsOf['timestep']!.data as Float32Array);
    assert.deepEqual(
      Array.from(feedsOf['motion_weight']!.data as Float32Array),
      ts.map((t) => Math.fround(5 * (1 - alphas[t]!))),
    );
    assert.equal(feedsOf['image_motion_weight'], undefined, 'stills have no motion part');
    const plainData = await UnetTrainingData.load(dir, squares, resolveUnetSettings(common, 2, 3));
    assert.equal((await plainData.batch(2))['motion_weight'], undefined);
    assert.equal(resolveUnetSettings({ motionWeight: 0 }, 1, 0).motionWeight, undefined);
    assert.throws(
      () => resolveUnetSettings({ motionWeight: -1 }, 1, 0),
      /motionWeight must be a non-negative number, got -1/,
    );
    assert.throws(
      () => resolveUnetSettings({ motionWeight: 2, predictionType: 'epsilon' }, 1, 0),
      /motionWeight needs v_prediction/,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('UNet stage: with frameNoiseShared the clips get frame-correlated noise, the stills not', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-unet-stage-'));
  try {
    const dir = componentsDir(root);
    const common = {
      source: squares,
      frames: 3,
      width: 16,
      height: 16,
      images: 1,
      predictionType: 'epsilon' as const,
    };
    const load = (frameNoiseShared: number): Promise<UnetTrainingData> =>
      UnetTrainingData.load(dir, squares, resolveUnetSettings({ ...common, frameNoiseShared }, 2, 3));
    const [plain, mixed] = await Promise.all([load(0), load(0.64)]);
    assert.equal(resolveUnetSettings({ ...common, frameNoiseShared: 0 }, 2, 3).frameNoiseShared, undefined);
    const a = await plain.batch(4);
    const b = await mixed.batch(4);
    assert.deepEqual(b['image_target']!.data, a['image_target']!.data, 'stills: independent noise as before');
    // ε_mixed = 0.8·shared + 0.6·ε_plain, so (ε_mixed − 0.6·ε_plain)/0.8 is the same in every frame of a clip.
    const own = a['target']!.data as Float32Array;
    const noise = b['target']!.data as Float32Array;
    const [n, c, f, h, w] = mixed.latentShape;
    const hw = h * w;
    let worst = 0;
    let differs = 0;
    for (let bc = 0; bc < n * c; bc++)
      for (let k = 0; k < hw; k++) {
        const shared = (i: number): number => (noise[i]! - 0.6 * own[i]!) / 0.8;
        const first = shared(bc * f * hw + k);
        for (let fi = 1; fi < f; fi++)
          worst = Math.max(worst, Math.abs(shared((bc * f + fi) * hw + k) - first));
        differs = Math.max(differs, Math.abs(noise[bc * f * hw + k]! - own[bc * f * hw + k]!));
      }
    assert.ok(worst < 1e-5, `one shared component per clip and channel (max deviation ${worst})`);
    assert.ok(differs > 0.1, "the clips' noise changed");
    assert.throws(
      () => resolveUnetSettings({ frameNoiseShared: -1 }, 1, 0),
      /unet stage: frameNoiseShared must be a number in \[0, 1\), got -1/,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('UNet stage: zeroTerminalSnr trains on rescaled betas (pure noise at t = 999) and exports a matching DDIM', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-unet-stage-'));
  try {
    const dir = componentsDir(root);
    const common = {
      source: squares,
      frames: 2,
      width: 16,
      height: 16,
      images: 1,
      predictionType: 'v_prediction' as const,
    };
    const load = (zeroTerminalSnr: boolean): Promise<UnetTrainingData> =>
      UnetTrainingData.load(dir, squares, resolveUnetSettings({ ...common, zeroTerminalSnr }, 2, 3));
    const [plain, zero] = await Promise.all([load(false), load(true)]);
    const zeroAlphas = DDPMScheduler.fromConfig(trainSchedulerConfig(true)).alphasCumprod;
    const plainAlphas = DDPMScheduler.fromConfig(trainSchedulerConfig(false)).alphasCumprod;
    assert.equal(zeroAlphas[999], 0);
    assert.ok(plainAlphas[999]! > 0.004);
    // Same step, same clip latents: x0 = √ᾱ x_t − √(1−ᾱ) v recovers them only with each run's own ᾱ.
    const recover = (f: Record<string, HostTensor>, alphas: Float32Array | number[]): Float32Array => {
      const noisy = f['noisy']!.data as Float32Array;
      const v = f['target']!.data as Float32Array;
      const ts = Array.from(f['timestep']!.data as Float32Array);
      const per = noisy.length / ts.length;
      return noisy.map((x, i) => {
        const a = alphas[ts[Math.floor(i / per)]!]!;
        return Math.sqrt(a) * x - Math.sqrt(1 - a) * v[i]!;
      });
    };
    const a = await plain.batch(6);
    const b = await zero.batch(6);
    const x0 = recover(a, plainAlphas);
    const x0z = recover(b, zeroAlphas);
    let worst = 0;
    for (let i = 0; i < x0.length; i++) worst = Math.max(worst, Math.abs(x0[i]! - x0z[i]!));
    assert.ok(worst < 1e-4, `same latents recovered (max difference ${worst})`);
    assert.throws(
      () => resolveUnetSettings({ predictionType: 'epsilon', zeroTerminalSnr: true }, 1, 0),
      /zeroTerminalSnr needs v_prediction/,
    );
    assert.equal(resolveUnetSettings({ zeroTerminalSnr: false }, 1, 0).zeroTerminalSnr, undefined);
    // A short run records the switch; its export samples with the rescaled betas from t = 999.
    const run = shortRun(join(root, 'run'), 2, []);
    await createUnetStage({
      ...common,
      componentsDir: dir,
      warmupSteps: 1,
      unetConfig: TINY_UNET,
      zeroTerminalSnr: true,
    }).run(run);
    exportUnetCheckpoint(run.out, dir);
    const scheduler = JSON.parse(
      readFileSync(join(dir, 'scheduler', 'scheduler_config.json'), 'utf8'),
    ) as Record<string, unknown>;
    assert.equal(scheduler['rescale_betas_zero_snr'], true);
    assert.equal(scheduler['timestep_spacing'], 'trailing');
    assert.equal(scheduler['prediction_type'], 'v_prediction');
    const pipe = await TextToVideoPipeline.fromPretrained(dir);
    pipe.components.scheduler.setTimesteps(5);
    assert.equal(pipe.components.scheduler.timesteps[0], 999);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("UNet stage: --init starts a new run from another run's EMA weights (same config only)", async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-unet-stage-'));
  try {
    const settings: UnetStageSettings = {
      componentsDir: componentsDir(root),
      source: squares,
      frames: 2,
      width: 16,
      height: 16,
      images: 0,
      warmupSteps: 1,
      unetConfig: TINY_UNET,
      predictionType: 'epsilon',
    };
    const lines: string[] = [];
    const base = shortRun(join(root, 'a'), 3, lines);
    await createUnetStage(settings).run(base);
    const source = loadLatestCheckpoint(join(base.out, 'checkpoints'))!;
    const ema = source.ema!.stateDict();
    // A fine-tuning run with another objective; a vanishing learning rate keeps the weights where they started.
    const tuned = { ...base, out: join(root, 'b'), steps: 1, lr: 1e-30, init: source.path };
    await createUnetStage({ ...settings, predictionType: 'v_prediction' }).run(tuned);
    assert.match(lines.join(''), /starting from the EMA weights of .*ckpt-3\.safetensors \(step 3\)/);
    const after = loadLatestCheckpoint(join(tuned.out, 'checkpoints'))!;
    assert.equal(after.step, 1);
    let worst = 0;
    for (const [name, w] of ema) {
      const p = after.params.get(name)!;
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(p[i]! - w[i]!));
    }
    assert.ok(worst < 1e-6, `parameters start at the EMA weights (max difference ${worst})`);
    assert.notDeepEqual(source.params.get('conv_out.weight'), ema.get('conv_out.weight'));
    // The export tells the sampler what the fine-tuned UNet predicts.
    exportUnetCheckpoint(tuned.out, settings.componentsDir!);
    const scheduler = JSON.parse(
      readFileSync(join(settings.componentsDir!, 'scheduler', 'scheduler_config.json'), 'utf8'),
    ) as Record<string, unknown>;
    assert.equal(scheduler['prediction_type'], 'v_prediction');
    const other = { ...TINY_UNET, layers_per_block: 2 };
    await assert.rejects(
      createUnetStage({ ...settings, unetConfig: other }).run({ ...tuned, out: join(root, 'c') }),
      /--init: .* was made with a different unet_config/,
    );
    // A pipeline folder (the layout of models/default) starts a run too: from its exported fp16 UNet weights.
    const exportedUnet = loadStateDict(join(settings.componentsDir!, 'unet')).stateDict;
    const fromFolder = { ...tuned, out: join(root, 'l'), init: settings.componentsDir! };
    await createUnetStage(settings).run(fromFolder);
    assert.match(lines.join(''), /starting from the exported weights in /);
    const folderStart = loadLatestCheckpoint(join(fromFolder.out, 'checkpoints'))!;
    assert.equal(folderStart.params.size, exportedUnet.size);
    for (const [k, v] of exportedUnet) assert.ok(maxDiff(folderStart.params.get(k)!, v) < 1e-6, k);
    assert.ok(maxDiff(exportedUnet.get('conv_out.weight')!, ema.get('conv_out.weight')!) > 0, 'fp16-rounded');
    await assert.rejects(
      createUnetStage({ ...settings, unetConfig: other }).run({ ...fromFolder, out: join(root, 'm') }),
      /--init: .*unet\/config\.json differs from this run's UNet config/,
    );
    await assert.rejects(
      createUnetStage(settings).run({ ...fromFolder, out: join(root, 'n'), init: join(root, 'a') }),
      /--init: .* has no unet\/config\.json/,
    );
    // A parameter-free switch (sinusoidal temporal positions) may differ from the --init run's config; the
    // new run and its export record it.
    const withPositions = { ...tuned, out: join(root, 'e'), temporalPositions: true };
    await createUnetStage(settings).run(withPositions);
    exportUnetCheckpoint(withPositions.out, settings.componentsDir!);
    const exported = JSON.parse(
      readFileSync(join(settings.componentsDir!, 'unet', 'config.json'), 'utf8'),
    ) as Record<string, unknown>;
    assert.equal(exported['temporal_positions'], 'sinusoidal');
    assert.equal(exported['frame_noise_shared'], undefined);
    // Temporal text attention adds parameters: the run starts from the --init weights plus the new ones, whose
    // output projections are zero (so the start is the --init run's function), and exports them.
    const withText = { ...tuned, out: join(root, 'h'), temporalTextAttention: true };
    await createUnetStage(settings).run(withText);
    const textStart = loadLatestCheckpoint(join(withText.out, 'checkpoints'))!;
    const addedKeys = [...textStart.params.keys()].filter((k) => !ema.has(k));
    assert.ok(addedKeys.length > 0 && addedKeys.every((k) => /\.(attn|norm)_text\./.test(k)), `${addedKeys}`);
    for (const [k, v] of ema) assert.ok(maxDiff(textStart.params.get(k)!, v) < 1e-6, k);
    for (const k of addedKeys.filter((k) => k.includes('attn_text.to_out')))
      assert.ok(
        maxDiff(textStart.params.get(k)!, new Float32Array(textStart.params.get(k)!.length)) < 1e-6,
        k,
      );
    exportUnetCheckpoint(withText.out, settings.componentsDir!);
    const textConfig = JSON.parse(
      readFileSync(join(settings.componentsDir!, 'unet', 'config.json'), 'utf8'),
    ) as Record<string, unknown>;
    assert.equal(textConfig['temporal_text_attention'], true);
    const reloaded = await UNet3DConditionModel.fromPretrained(join(settings.componentsDir!, 'unet'));
    assert.equal(reloaded.stateDict.size, textStart.params.size);
    await assert.rejects(
      createUnetStage(settings).run({ ...tuned, out: join(root, 'o'), init: settings.componentsDir! }),
      /UNet has the temporal text attention; pass --temporal-text-attention/,
    );
    // Its learning rate can be scaled: Adam's first step moves each parameter by the learning rate, so the
    // branch's output projection moves 10× as far with temporalTextLrScale 10, and the rest as far as without.
    const firstStep = async (out: string, scale?: number): Promise<Map<string, number>> => {
      const run = { ...tuned, out: join(root, out), lr: 1e-3, temporalTextAttention: true };
      const lrScale = scale !== undefined && { temporalTextLrScale: scale };
      await createUnetStage({ ...settings, warmupSteps: 0, ...lrScale }).run(run); // full lr at step 0
      const end = loadLatestCheckpoint(join(run.out, 'checkpoints'))!;
      const moved = new Map<string, number>();
      for (const [k, v] of end.params) moved.set(k, maxDiff(v, textStart.params.get(k)!));
      return moved;
    };
    const plainStep = await firstStep('i');
    const scaledStep = await firstStep('j', 10);
    const outKey = addedKeys.find((k) => k.endsWith('attn_text.to_out.0.weight'))!;
    const ratio = scaledStep.get(outKey)! / plainStep.get(outKey)!;
    assert.ok(Math.abs(ratio - 10) < 0.1, `attn_text moves 10× as far: ${ratio}`);
    const rest = 'conv_out.weight';
    assert.ok(Math.abs(scaledStep.get(rest)! / plainStep.get(rest)! - 1) < 1e-3, 'the rest moves as before');
    await assert.rejects(
      createUnetStage({ ...settings, temporalTextLrScale: 10 }).run({ ...tuned, out: join(root, 'k') }),
      /temporalTextLrScale needs the temporal text attention/,
    );
    assert.equal(resolveUnetSettings({ temporalTextLrScale: 1 }, 1, 0).temporalTextLrScale, undefined);
    assert.throws(
      () => resolveUnetSettings({ temporalTextLrScale: -2 }, 1, 0),
      /temporalTextLrScale must be a positive number, got -2/,
    );
    // So may frame-correlated noise: the run trains on it and its export tells the pipeline to sample so.
    const mixed = { ...tuned, out: join(root, 'f'), frameNoiseShared: 0.5 };
    const mixedRun = await createUnetStage(settings).run(mixed);
    assert.ok(mixedRun.losses.every(Number.isFinite));
    exportUnetCheckpoint(mixed.out, settings.componentsDir!);
    const mixedConfig = JSON.parse(
      readFileSync(join(settings.componentsDir!, 'unet', 'config.json'), 'utf8'),
    ) as Record<string, unknown>;
    assert.equal(mixedConfig['frame_noise_shared'], 0.5);
    await assert.rejects(
      createUnetStage(settings).run({ ...mixed, out: join(root, 'g'), frameNoiseShared: 1 }),
      /unet stage: frameNoiseShared must be a number in \[0, 1\), got 1/,
    );
    await assert.rejects(
      createUnetStage(settings).run({ ...tuned, out: join(root, 'd'), init: join(root, 'missing.st') }),
      /--init: .*missing\.st does not exist/,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('UNet stage with --train-text-encoder: the text encoder starts pretrained, learns, resumes and exports', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-unet-stage-'));
  try {
    const settings = tinySettings(root);
    const lines: string[] = [];
    const base = shortRun(join(root, 'unet-only'), 2, lines);
    await createUnetStage(settings).run(base);
    const unetOnly = loadLatestCheckpoint(join(base.out, 'checkpoints'))!;
    const pretrained = (await CLIPTextModel.fromPretrained(join(FIX, 'text_encoder'))).stateDict;

    // From a UNet-only checkpoint (--init): the UNet starts at its EMA weights, the text encoder at the
    // components' one; a vanishing learning rate keeps both there.
    const joint = createUnetStage({ ...settings, trainTextEncoder: true });
    const still = { ...base, out: join(root, 'still'), steps: 1, lr: 1e-30, init: unetOnly.path };
    await joint.run(still);
    const start = loadLatestCheckpoint(join(still.out, 'checkpoints'))!;
    assert.equal(start.params.size, unetOnly.params.size + pretrained.size);
    for (const [k, v] of pretrained)
      assert.ok(maxDiff(start.params.get(TEXT_ENCODER_PREFIX + k)!, v) < 1e-6, k);
    const ema = unetOnly.ema!.stateDict();
    for (const [k, v] of ema) assert.ok(maxDiff(start.params.get(k)!, v) < 1e-6, k);

    // Trained for real, the text encoder's weights move; a run stopped half way resumes onto the same curve.
    const trained = { ...base, out: join(root, 'joint'), steps: 6, lr: 3e-3 };
    const full = await joint.run(trained);
    const end = loadLatestCheckpoint(join(trained.out, 'checkpoints'))!;
    const key = 'text_model.encoder.layers.0.self_attn.q_proj.weight';
    assert.ok(maxDiff(end.params.get(TEXT_ENCODER_PREFIX + key)!, pretrained.get(key)!) > 1e-4);
    const split = { ...trained, out: join(root, 'joint-split') };
    let calls = 0;
    assert.equal((await joint.run({ ...split, shouldStop: () => ++calls >= 3 })).step, 3);
    assert.deepEqual((await joint.run(split)).losses, full.losses);

    // The export writes the fine-tuned text encoder (fp16 EMA weights, config kept) next to the UNet, and
    // can be repeated: the text encoder it replaced is not held against it, the VAE still is.
    const model = join(root, 'model');
    mkdirSync(model);
    for (const c of ['tokenizer', 'vae']) symlinkSync(join(FIX, c), join(model, c));
    cpSync(join(FIX, 'text_encoder'), join(model, 'text_encoder'), { recursive: true });
    assert.equal(exportUnetCheckpoint(trained.out, model), 6);
    assert.equal(exportUnetCheckpoint(trained.out, model), 6);
    const text = await CLIPTextModel.fromPretrained(join(model, 'text_encoder'));
    const tuned = end.ema!.stateDict().get(TEXT_ENCODER_PREFIX + key)!;
    assert.deepEqual(text.stateDict.get(key), f16ToF32(f32ToF16(tuned)));
    // That folder starts a joint run (--init): the UNet and the text encoder from its exported weights.
    const fromModel = { ...still, out: join(root, 'from-model'), init: model };
    await joint.run(fromModel);
    const modelStart = loadLatestCheckpoint(join(fromModel.out, 'checkpoints'))!;
    assert.equal(modelStart.params.size, start.params.size);
    assert.ok(maxDiff(modelStart.params.get(TEXT_ENCODER_PREFIX + key)!, text.stateDict.get(key)!) < 1e-6);
    const conv = 'conv_out.weight';
    const exportedConv = loadStateDict(join(model, 'unet')).stateDict.get(conv)!;
    assert.ok(maxDiff(modelStart.params.get(conv)!, exportedConv) < 1e-6);
    // A UNet-only run from it needs the text encoder it was trained with, which the components do not hold.
    await assert.rejects(
      createUnetStage(settings).run({ ...fromModel, out: join(root, 'from-model-unet') }),
      /--init: .*'s text_encoder differ from the one\(s\) this run trains against/,
    );
    assert.deepEqual(
      JSON.parse(readFileSync(join(model, 'text_encoder', 'config.json'), 'utf8')),
      JSON.parse(readFileSync(join(FIX, 'text_encoder', 'config.json'), 'utf8')),
    );
    const unet = SafetensorsFile.open(join(model, 'unet', 'diffusion_pytorch_model.safetensors'));
    try {
      assert.ok(unet.names().every((n) => !n.startsWith(TEXT_ENCODER_PREFIX)));
    } finally {
      unet.close();
    }
    const pipe = await TextToVideoPipeline.fromPretrained(model);
    assert.equal(await framesGenerated(pipe), 2);
    rmSync(join(model, 'vae'));
    mkdirSync(join(model, 'vae'));
    cpSync(join(FIX, 'vae'), join(model, 'vae'), { recursive: true });
    writeFileSync(
      join(model, 'vae', 'config.json'),
      '{"_class_name": "AutoencoderKL", "scaling_factor": 0.5}',
    );
    assert.throws(() => exportUnetCheckpoint(trained.out, model), /vae differ/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/** ‖a − b‖ / ‖a‖ of two captions' text states under the text encoder in `dir`. */
async function separation(dir: string, a: string, b: string): Promise<number> {
  const text = await CLIPTextModel.fromPretrained(dir);
  const tok = await CLIPTokenizer.fromPretrained(join(FIX, 'tokenizer'));
  const [x, y] = await Promise.all(
    [a, b].map(
      async (c) => (await text.encode([tok.encode(c).inputIds])).lastHiddenState.data as Float32Array,
    ),
  );
  let d = 0;
  let n = 0;
  x!.forEach((v, i) => ((d += (v - y![i]!) ** 2), (n += v * v)));
  return Math.sqrt(d / n);
}

test('UNet stage with --text-probe: the text states come to tell the captions apart; the probe is not exported', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-unet-probe-'));
  try {
    const settings = tinySettings(root, { trainTextEncoder: true, probeCaptions: 8 });
    assert.throws(
      () => resolveUnetSettings({ textProbe: 1 }, 1, 0),
      /a text probe needs the text encoder trained with the UNet/,
    );
    assert.throws(
      () => resolveUnetSettings({ trainTextEncoder: true, textProbe: -1 }, 1, 0),
      /positive weight/,
    );
    assert.throws(() => resolveUnetSettings({ textLrScale: 2 }, 1, 0), /textLrScale needs the text encoder/);
    // textLrScale: a vanishing scale freezes the text encoder and the probe while the UNet trains.
    const frozen = shortRun(join(root, 'frozen'), 2, []);
    await createUnetStage({ ...settings, textProbe: 1, textLrScale: 1e-30 }).run(frozen);
    const still = loadLatestCheckpoint(join(frozen.out, 'checkpoints'))!;
    const pretrained = (await CLIPTextModel.fromPretrained(join(FIX, 'text_encoder'))).stateDict;
    for (const [k, v] of pretrained)
      assert.ok(maxDiff(still.params.get(TEXT_ENCODER_PREFIX + k)!, v) < 1e-6, k);
    const unetKey = 'conv_in.weight';
    const unetStart = UNet3DConditionModel.fromConfig({ ...TINY_UNET })
      .initParameters(1)
      .get(unetKey)!;
    assert.ok(maxDiff(still.params.get(unetKey)!, unetStart) > 1e-4);
    const exported: Record<string, string> = {};
    for (const [name, textProbe] of [
      ['plain', undefined],
      ['probe', 1],
    ] as const) {
      const run = shortRun(join(root, name), 30, []);
      await createUnetStage({ ...settings, ...(textProbe !== undefined && { textProbe }) }).run(run);
      const ckpt = loadLatestCheckpoint(join(run.out, 'checkpoints'))!;
      assert.equal(
        [...ckpt.params.keys()].some((k) => k.startsWith(TEXT_PROBE_PREFIX)),
        textProbe !== undefined,
      );
      const model = join(root, `model-${name}`);
      mkdirSync(model);
      for (const c of ['tokenizer', 'vae']) symlinkSync(join(FIX, c), join(model, c));
      cpSync(join(FIX, 'text_encoder'), join(model, 'text_encoder'), { recursive: true });
      assert.equal(exportUnetCheckpoint(run.out, model), 30);
      exported[name] = model;
    }
    // The export loads strictly (no probe key in text_encoder/ or unet/) and generates.
    const pipe = await TextToVideoPipeline.fromPretrained(exported['probe']!);
    assert.equal(await framesGenerated(pipe), 2);
    // "left" and "right" (the squares' only difference in motion) pull apart far more with the probe.
    const [l, r] = ['a red square moves left', 'a red square moves right'];
    const before = await separation(join(FIX, 'text_encoder'), l, r);
    const plain = await separation(join(exported['plain']!, 'text_encoder'), l, r);
    const probed = await separation(join(exported['probe']!, 'text_encoder'), l, r);
    assert.ok(probed > 2 * Math.max(before, plain), `separation ${before} → plain ${plain}, probe ${probed}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('UNet stage: dataOffset shifts the data; --init of a checkpoint continues after its data', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-unet-offset-'));
  try {
    const firstIndex: number[] = [];
    let wanted = Infinity;
    // Records the smallest clip index each run asks for (the prefetcher may ask one step ahead).
    const recording: ClipSource = (index, q) => {
      if (!q.imageMode && index < 1e12) wanted = Math.min(wanted, index);
      return squares(index, q);
    };
    const settings: UnetStageSettings = {
      componentsDir: componentsDir(root),
      source: recording,
      frames: 2,
      width: 16,
      height: 16,
      images: 0,
      warmupSteps: 1,
      unetConfig: TINY_UNET,
    };
    const lines: string[] = [];
    const run = async (name: string, extra: Partial<StageOptions>, s: UnetStageSettings = settings) => {
      wanted = Infinity;
      const opts = { ...shortRun(join(root, name), 2, lines), ...extra };
      await createUnetStage(s).run(opts);
      firstIndex.push(wanted);
      return loadLatestCheckpoint(join(opts.out, 'checkpoints'))!;
    };
    const a = await run('a', {});
    assert.equal(firstIndex[0], 0);
    assert.equal(
      (a.extra?.['data'] as { dataOffset?: number }).dataOffset,
      undefined,
      'offset 0 is not recorded',
    );
    // Continuing a's checkpoint: its 2 steps are skipped, and the new offset is recorded for the next one.
    const b = await run('b', { init: a.path });
    assert.equal(firstIndex[1], 2);
    assert.equal((b.extra?.['data'] as { dataOffset?: number }).dataOffset, 2);
    assert.match(lines.join(''), /data offset 2 steps/);
    const c = await run('c', { init: b.path });
    assert.equal(firstIndex[2], 4);
    assert.equal((c.extra?.['data'] as { dataOffset?: number }).dataOffset, 4);
    // An explicit offset wins; a pipeline-folder --init starts at 0 unless told.
    await run('d', { init: a.path }, { ...settings, dataOffset: 10 });
    assert.equal(firstIndex[3], 10);
    await assert.rejects(
      createUnetStage({ ...settings, dataOffset: -1 }).run(shortRun(join(root, 'e'), 1, lines)),
      /dataOffset must be a non-negative integer, got -1/,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
