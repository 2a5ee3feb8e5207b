// The default model's UNet stage (`kinema train unet`): a small UNet3DConditionModel with VideoCrafter1 FPS
// conditioning learns v-prediction (or epsilon; DDPM schedule, MSE) on latent videos of the procedural world.
// Latents come from the trained VAE (posterior sample × scaling_factor), text conditioning from the trained
// CLIP text encoder's last_hidden_state (cached per caption); captions become "" with probability 0.1 so that
// classifier-free guidance works at generation. Joint image–video training: every step trains a batch of
// clips plus a few image-mode stills (1-frame videos with still captions) through the same weights. The data
// of step i is a pure function of (seed, i), so a resumed run continues the identical loss curve. With
// --train-text-encoder the text encoder is trained too (optionally at its own learning rate, and with a text
// probe loss that makes every attribute a caption names decodable from its states).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as op from '../../engine/ops.js';
import type { Tensor } from '../../engine/tensor.js';
import { hostTensor } from '../../engine/runtime.js';
import type { HostTensor } from '../../engine/runtime.js';
import { Generator } from '../../engine/random.js';
import { CLIPTokenizer } from '../../models/clip/tokenizer.js';
import { CLIPTextModel } from '../../models/clip/text_model.js';
import { AutoencoderKL } from '../../models/vae/autoencoder_kl.js';
import { UNet3DConditionModel } from '../../models/unet3d/unet3d.js';
import { DDPMScheduler } from '../../schedulers/ddpm.js';
import { mixFrameNoise } from '../../schedulers/frame_noise.js';
import type { StateDict } from '../../nn/module.js';
import { formatDuration } from '../../cli/progress.js';
import { GradStep } from '../trainer.js';
import {
  indexedGenerator,
  logLine,
  prefetching,
  runTraining,
  writeRunReport,
  secondsPerStep,
  stageResult,
} from './common.js';
import type { StageDefinition, StageOptions, StageResult } from './common.js';
import { toFloatCHW, worldSample } from '../data/world.js';
import { ladderSource } from '../data/ladder.js';
import { loadCheckpoint, loadLatestCheckpoint } from '../checkpoint.js';
import { CAPTION_ATTRIBUTE_CLASSES, captionAttributeTargets } from '../data/caption_attributes.js';
import {
  DEFAULT_MODEL_DIR,
  DEFAULT_UNET_CONFIG,
  resolveUnetSettings,
  trainSchedulerConfig,
  trainingTimestep,
} from './unet_settings.js';
import type { ClipSource, Resolved, TrainingClip, UnetStageSettings } from './unet_settings.js';
import { TEXT_ENCODER_PREFIX, TEXT_PROBE_PREFIX, UnetWithTextEncoder, textProbeLoss } from './unet_text.js';
import {
  checkSameComponents,
  componentFingerprints,
  exportUnetPipeline,
  initFromPipelineFolder,
} from './unet_export.js';
import { KinemaError } from '../../errors.js';
export * from './unet_settings.js';
export * from './unet_text.js';
export * from './unet_export.js';

/** Image-mode samples are drawn from their own index range, so they never repeat a clip's scene. */
const IMAGE_INDEX_OFFSET = 1e12;
/** The text probe's captions come from a third index range. */
const PROBE_INDEX_OFFSET = 2e12;
/** Fraction of the probe's captions that are image-mode (still) captions, as in the CLIP stage. */
const PROBE_STILL_FRACTION = 0.25;
/** `indexedGenerator` purpose of the UNet stage's per-step noise. */
const RNG_PURPOSE = 3;
/** `indexedGenerator` purpose of the text probe's image-mode choices. */
const RNG_PURPOSE_PROBE = 4;

/** The procedural world's training split as a clip source (`trackCentring`: the world's, default 1). */
export function worldSource(seed: number, trackCentring = 1): ClipSource {
  return (index, q) => {
    const sample = worldSample(seed, index, {
      width: q.width,
      height: q.height,
      frames: q.frames,
      split: 'train',
      imageMode: q.imageMode,
      trackCentring,
    });
    return { caption: sample.caption, frames: sample.frames };
  };
}

/** One part of a step's batch (the clips, or the stills) as program feeds. */
interface Part {
  readonly count: number;
  readonly frames: number;
  readonly pixels: Float32Array;
  /** Text states [count, 77, D] of the frozen encoder, or token ids [count, 77] when it is trained. */
  readonly context: Float32Array | BigInt64Array;
  readonly timesteps: number[];
}

/** The frozen conditioning components (VAE + text encoder) and the batch builder for training steps. */
export class UnetTrainingData {
  private readonly textCache = new Map<string, Float32Array>();
  private readonly schedule: DDPMScheduler;
  /** Clip latents [B, C, F, h, w]. */
  readonly latentShape: [number, number, number, number, number];
  /** Still latents [images, C, 1, h, w] (images may be 0). */
  readonly imageShape: [number, number, number, number, number];
  /** Text states per sample [77, D]. */
  readonly tokens: number;
  readonly textHidden: number;
  /** The text probe's settings, when the run has one. */
  readonly probe: { weight: number; captions: number } | undefined;
  /** The motion term's weight β, when the run has one (the clips get a `motion_weight` feed). */
  readonly motionWeight: number | undefined;

  private constructor(
    private readonly tokenizer: CLIPTokenizer,
    readonly textEncoder: CLIPTextModel,
    private readonly vae: AutoencoderKL,
    private readonly source: ClipSource,
    private readonly r: Resolved,
  ) {
    const f = vae.scaleFactor;
    if (r.width % f !== 0 || r.height % f !== 0)
      throw new KinemaError(
        'TRAIN_BAD_SETTINGS',
        `unet stage: ${r.width}×${r.height} is not divisible by the VAE factor ${f}`,
      );
    const z = vae.config.latentChannels;
    this.latentShape = [r.batchSize, z, r.frames, r.height / f, r.width / f];
    this.imageShape = [r.images, z, 1, r.height / f, r.width / f];
    this.tokens = tokenizer.modelMaxLength;
    this.textHidden = textEncoder.config.hiddenSize;
    this.probe = r.textProbe;
    this.motionWeight = r.motionWeight;
    this.schedule = DDPMScheduler.fromConfig(
      trainSchedulerConfig(r.zeroTerminalSnr === true, r.noiseShift ?? 1),
    );
  }

  /** Loads `dir/tokenizer`, `dir/text_encoder` and `dir/vae`. */
  static async load(dir: string, source: ClipSource, r: Resolved, threads = 0): Promise<UnetTrainingData> {
    for (const c of ['tokenizer', 'text_encoder', 'vae']) {
      if (!existsSync(join(dir, c)))
        throw new KinemaError(
          'TRAIN_BAD_SETTINGS',
          `unet stage: ${dir} has no ${c}/ folder (train and export the CLIP and VAE stages first)`,
        );
    }
    const rt = threads > 0 ? { threads } : {};
    const [tokenizer, textEncoder, vae] = await Promise.all([
      CLIPTokenizer.fromPretrained(join(dir, 'tokenizer')),
      CLIPTextModel.fromPretrained(join(dir, 'text_encoder'), rt),
      AutoencoderKL.fromPretrained(join(dir, 'vae'), rt),
    ]);
    return new UnetTrainingData(tokenizer, textEncoder, vae, source, r);
  }

  /** last_hidden_state [77, D] of a caption, encoded as the pipeline encodes prompts (cached). */
  async embed(caption: string): Promise<Float32Array> {
    let hit = this.textCache.get(caption);
    if (!hit) {
      const { inputIds } = this.tokenizer.encode(caption);
      hit = (await this.textEncoder.encode([inputIds])).lastHiddenState.data as Float32Array;
      if (this.textCache.size >= 50_000) this.textCache.clear();
      this.textCache.set(caption, hit);
    }
    return hit;
  }

  /**
   * The feeds of training step `step`: for the clips and for the stills, the noisy latents, timesteps,
   * text states, fps and the target to predict (noise or v). A pure function of (seed, step).
   */
  async batch(step: number): Promise<Record<string, HostTensor>> {
    const { batchSize: b, images } = this.r;
    const rng = indexedGenerator(this.r.seed, RNG_PURPOSE, step);
    const u = rng.uniform(2 * (b + images));
    const clips = await this.part(step * b, b, this.r.frames, u.subarray(0, 2 * b));
    const stills = await this.part(IMAGE_INDEX_OFFSET + step * images, images, 1, u.subarray(2 * b));
    const x0 = await this.encodeLatents([clips, stills], rng);
    const noise = rng.normal(x0.length);
    const split = this.latentShape.reduce((x, y) => x * y, 1);
    const rho = this.r.frameNoiseShared;
    if (rho !== undefined) {
      const [b, c, , h, w] = this.latentShape;
      mixFrameNoise(noise.subarray(0, split), rng.normal(b * c * h * w), this.latentShape, rho);
    }
    const feeds = this.feeds('', clips, this.latentShape, x0.subarray(0, split), noise.subarray(0, split));
    if (images > 0)
      Object.assign(
        feeds,
        this.feeds('image_', stills, this.imageShape, x0.subarray(split), noise.subarray(split)),
      );
    if (this.probe) Object.assign(feeds, await this.probeFeeds(step, this.probe.captions));
    return feeds;
  }

  /**
   * Clean clip latents [B, C, F, h, w] of step `step` (no stills) with their text states [B, 77, D] and timesteps,
   * and the step's generator positioned for the noise: for stages that noise the latents themselves (DSDN).
   */
  async cleanClips(
    step: number,
  ): Promise<{ x0: Float32Array; context: Float32Array; timesteps: number[]; rng: Generator }> {
    const b = this.r.batchSize;
    const rng = indexedGenerator(this.r.seed, RNG_PURPOSE, step);
    const clips = await this.part(step * b, b, this.r.frames, rng.uniform(2 * b));
    if (!(clips.context instanceof Float32Array))
      throw new KinemaError('TRAIN_BAD_SETTINGS', 'cleanClips: the text encoder must be frozen');
    const x0 = await this.encodeLatents([clips], rng);
    return { x0, context: clips.context, timesteps: clips.timesteps, rng };
  }

  /** The noisy latents and the training target (noise or v) of x₀ under `noise` at per-sample timesteps. */
  noisyAndTarget(
    x0: Float32Array,
    noise: Float32Array,
    timesteps: number[],
  ): { noisy: Float32Array; target: Float32Array } {
    return { noisy: this.schedule.addNoise(x0, noise, timesteps), target: this.target(x0, noise, timesteps) };
  }

  /** The frame rate the clips are conditioned on. */
  get fps(): number {
    return this.r.fps;
  }

  /** The text probe's captions of step `step` (token ids) and what each names (targets rows). */
  private async probeFeeds(step: number, n: number): Promise<Record<string, HostTensor>> {
    const { width, height } = this.r;
    const still = indexedGenerator(this.r.seed, RNG_PURPOSE_PROBE, step).uniform(n);
    const ids = new BigInt64Array(n * this.tokens);
    const targets = new Float32Array(n * CAPTION_ATTRIBUTE_CLASSES);
    for (let i = 0; i < n; i++) {
      const imageMode = still[i]! < PROBE_STILL_FRACTION;
      const { caption } = await this.source(PROBE_INDEX_OFFSET + step * n + i, {
        width,
        height,
        frames: 1,
        imageMode,
      });
      this.tokenizer.encode(caption).inputIds.forEach((id, j) => (ids[i * this.tokens + j] = BigInt(id)));
      targets.set(captionAttributeTargets(caption), i * CAPTION_ATTRIBUTE_CLASSES);
    }
    return {
      probe_input_ids: hostTensor(ids, [n, this.tokens], 'int64'),
      probe_targets: hostTensor(targets, [n, CAPTION_ATTRIBUTE_CLASSES]),
    };
  }

  private feeds(
    prefix: string,
    p: Part,
    shape: number[],
    x0: Float32Array,
    noise: Float32Array,
  ): Record<string, HostTensor> {
    const noisy = this.schedule.addNoise(x0, noise, p.timesteps);
    const beta = this.motionWeight;
    return {
      ...(beta !== undefined &&
        p.frames > 1 && {
          [`${prefix}motion_weight`]: hostTensor(
            Float32Array.from(p.timesteps, (t) => beta * (1 - this.schedule.alphasCumprod[t]!)),
            [p.count],
          ),
        }),
      [`${prefix}noisy`]: hostTensor(noisy, shape),
      [`${prefix}timestep`]: hostTensor(Float32Array.from(p.timesteps), [p.count]),
      ...(p.context instanceof BigInt64Array
        ? { [`${prefix}input_ids`]: hostTensor(p.context, [p.count, this.tokens], 'int64') }
        : { [`${prefix}context`]: hostTensor(p.context, [p.count, this.tokens, this.textHidden]) }),
      [`${prefix}fps`]: hostTensor(new Float32Array(p.count).fill(this.r.fps), [p.count]),
      [`${prefix}target`]: hostTensor(this.target(x0, noise, p.timesteps), shape),
    };
  }

  /** What the UNet must output: the noise, or v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀ per sample. */
  private target(x0: Float32Array, noise: Float32Array, timesteps: number[]): Float32Array {
    if (this.r.predictionType === 'epsilon') return noise.slice();
    const out = new Float32Array(noise.length);
    const per = noise.length / timesteps.length;
    timesteps.forEach((t, b) => {
      const a = this.schedule.alphasCumprod[t]!;
      const sa = Math.fround(Math.sqrt(a));
      const sb = Math.fround(Math.sqrt(1 - a));
      for (let i = b * per; i < (b + 1) * per; i++) out[i] = sa * noise[i]! - sb * x0[i]!;
    });
    return out;
  }

  /** `count` samples from index `first` on; `u` holds 2·count uniforms (caption dropout, timestep). */
  private async part(first: number, count: number, frames: number, u: Float32Array): Promise<Part> {
    const { width, height } = this.r;
    const pixels = new Float32Array(count * frames * 3 * width * height);
    const context = this.r.trainTextEncoder
      ? new BigInt64Array(count * this.tokens)
      : new Float32Array(count * this.tokens * this.textHidden);
    const timesteps: number[] = [];
    const T = this.schedule.config.numTrainTimesteps;
    for (let i = 0; i < count; i++) {
      const clip = await this.source(first + i, { width, height, frames, imageMode: frames === 1 });
      checkClip(clip, frames, width, height);
      pixels.set(toFloatCHW(clip.frames, width, height), i * frames * 3 * width * height);
      const caption = u[i]! < this.r.captionDropout ? '' : clip.caption;
      if (context instanceof BigInt64Array) {
        const { inputIds } = this.tokenizer.encode(caption);
        inputIds.forEach((id, j) => (context[i * this.tokens + j] = BigInt(id)));
      } else context.set(await this.embed(caption), i * this.tokens * this.textHidden);
      timesteps.push(
        trainingTimestep(u[count + i]!, T, this.r.timestepShift ?? 1, this.r.terminalShare ?? 0),
      );
    }
    return { count, frames, pixels, context, timesteps };
  }

  /** One VAE run over every frame; posterior samples × scaling_factor as [N, C, F, h, w] per part. */
  private async encodeLatents(parts: Part[], rng: Generator): Promise<Float32Array> {
    const [, c, , h, w] = this.latentShape;
    const n = parts.reduce((s, p) => s + p.count * p.frames, 0);
    const pixels = new Float32Array(n * 3 * this.r.width * this.r.height);
    let at = 0;
    for (const p of parts) {
      pixels.set(p.pixels, at);
      at += p.pixels.length;
    }
    const post = await this.vae.encode(hostTensor(pixels, [n, 3, this.r.height, this.r.width]));
    const mean = post.mean.data as Float32Array;
    const std = post.std.data as Float32Array;
    const eps = rng.normal(mean.length);
    const scale = this.vae.config.scalingFactor;
    const out = new Float32Array(mean.length);
    const hw = h * w;
    let base = 0;
    for (const { count, frames: f } of parts) {
      for (let bi = 0; bi < count; bi++)
        for (let fi = 0; fi < f; fi++)
          for (let ci = 0; ci < c; ci++) {
            const from = base + ((bi * f + fi) * c + ci) * hw;
            const to = base + ((bi * c + ci) * f + fi) * hw;
            for (let k = 0; k < hw; k++)
              out[to + k] = (mean[from + k]! + std[from + k]! * eps[from + k]!) * scale;
          }
      base += count * f * c * hw;
    }
    return out;
  }
}

function checkClip(clip: TrainingClip, frames: number, width: number, height: number): void {
  if (clip.frames.length !== frames)
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `unet stage: the data source gave ${clip.frames.length} frames, expected ${frames}`,
    );
  for (const fr of clip.frames) {
    if (fr.length !== width * height * 3)
      throw new KinemaError(
        'TRAIN_BAD_SETTINGS',
        `unet stage: a frame has ${fr.length} bytes, expected ${width}×${height}×3`,
      );
  }
}

/** The UNet the stage trains (config checked against the text encoder width). */
export function buildUnet(
  config: Readonly<Record<string, unknown>>,
  textHidden: number,
): UNet3DConditionModel {
  const unet = UNet3DConditionModel.fromConfig({ ...config });
  if (unet.config.crossAttentionDim !== textHidden)
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `unet stage: cross_attention_dim ${unet.config.crossAttentionDim} differs from the text encoder's hidden size ${textHidden}`,
    );
  if (!unet.config.fpsCond)
    throw new KinemaError('TRAIN_BAD_SETTINGS', 'unet stage: the UNet config must set fps_cond: true');
  return unet;
}

/**
 * The UNet config: `overrides` (the --config keys) over `config`, with `in_channels`, `out_channels` (the VAE's
 * latent channels) and `sample_size` (the latent frame size) taken from the training latents [B, C, F, h, w],
 * so a UNet follows the components' VAE. An override that sets one of those to another value is an error.
 */
export function unetConfigFor(
  config: Readonly<Record<string, unknown>>,
  latentShape: readonly number[],
  overrides: Readonly<Record<string, unknown>> = {},
): Record<string, unknown> {
  const [, channels, , h, w] = latentShape;
  if (h !== w)
    throw new KinemaError('TRAIN_BAD_SETTINGS', `unet stage: latent frames must be square, got ${h}×${w}`);
  const out: Record<string, unknown> = { ...config, ...overrides };
  for (const [key, want] of [
    ['in_channels', channels],
    ['out_channels', channels],
    ['sample_size', h],
  ] as const) {
    if (key in overrides && overrides[key] !== want)
      throw new KinemaError(
        'TRAIN_BAD_SETTINGS',
        `unet stage: the config sets ${key} ${JSON.stringify(overrides[key])}, but the components' VAE gives ` +
          `${want} (latents ${channels}×${h}×${w}); leave ${key} out to follow the VAE`,
      );
    out[key] = want;
  }
  return out;
}

/**
 * A part's loss: the mean square of `out − target` over [N, C, F, h, w], plus, with `motionWeight` [N], the
 * motion term: the mean over the batch of motionWeight[n] × the mean square of clip n's error minus its mean
 * over the frames (the part of the error that changes from frame to frame).
 */
export function clipLoss(out: Tensor, target: Tensor, motionWeight: Tensor | null): Tensor {
  const d = op.sub(out, target);
  const mse = op.mean(op.mul(d, d), [0, 1, 2, 3, 4]);
  if (motionWeight === null) return mse;
  const r = op.sub(d, op.mean(d, [2], true));
  const perClip = op.mean(op.mul(r, r), [1, 2, 3, 4]);
  return op.add(mse, op.mean(op.mul(perClip, motionWeight), [0]));
}

/**
 * The forward+backward program: MSE between the UNet's output and the target (noise or v), averaged per sample over the clips and
 * the stills (both through the same UNet weights).
 */
export function unetGradStep(
  model: UNet3DConditionModel | UnetWithTextEncoder,
  data: UnetTrainingData,
  threads = 0,
  /** Adapter training: weights fed as fixed values, and the only names differentiated. */
  freeze?: { frozen: StateDict; trainable: readonly string[] },
): Promise<GradStep> {
  const unet = model instanceof UnetWithTextEncoder ? model.unet : model;
  const text = model instanceof UnetWithTextEncoder ? model.textEncoder : null;
  const probe = model instanceof UnetWithTextEncoder ? model.probe : null;
  const probeWeight = data.probe?.weight ?? 0;
  if ((probe !== null) !== probeWeight > 0)
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      'unet stage: the model has a text probe exactly when the training data has probe captions',
    );
  const motion = data.motionWeight !== undefined && data.latentShape[2]! > 1;
  const parts = [{ prefix: '', shape: data.latentShape, motion }];
  if (data.imageShape[0] > 0) parts.push({ prefix: 'image_', shape: data.imageShape, motion: false });
  const total = parts.reduce((s, p) => s + p.shape[0], 0);
  const specs = parts.flatMap(({ prefix, shape, motion }) => [
    ...(motion ? [{ name: `${prefix}motion_weight`, shape: [shape[0]] }] : []),
    { name: `${prefix}noisy`, shape },
    { name: `${prefix}timestep`, shape: [shape[0]] },
    text
      ? { name: `${prefix}input_ids`, shape: [shape[0], data.tokens], dtype: 'int64' as const }
      : { name: `${prefix}context`, shape: [shape[0], data.tokens, data.textHidden] },
    { name: `${prefix}fps`, shape: [shape[0]] },
    { name: `${prefix}target`, shape },
  ]);
  if (data.probe)
    specs.push(
      { name: 'probe_input_ids', shape: [data.probe.captions, data.tokens], dtype: 'int64' as const },
      { name: 'probe_targets', shape: [data.probe.captions, CAPTION_ATTRIBUTE_CLASSES] },
    );
  return GradStep.create(
    (x) => {
      const losses = parts.map(({ prefix, shape, motion }) => {
        const context = text
          ? text.textModel.forward(x[`${prefix}input_ids`]!).lastHiddenState
          : x[`${prefix}context`]!;
        const eps = unet.forward(x[`${prefix}noisy`]!, x[`${prefix}timestep`]!, context, {
          fps: x[`${prefix}fps`]!,
        });
        const loss = clipLoss(eps, x[`${prefix}target`]!, motion ? x[`${prefix}motion_weight`]! : null);
        return op.mul(loss, shape[0] / total);
      });
      const diffusion = losses.reduce((a, l) => op.add(a, l));
      if (!probe || !text) return diffusion;
      const states = text.textModel.forward(x['probe_input_ids']!).lastHiddenState;
      return op.add(diffusion, op.mul(textProbeLoss(probe, states, x['probe_targets']!), probeWeight));
    },
    specs,
    { ...(threads > 0 && { threads }), ...freeze },
  );
}

/** Parameter names of the temporal transformers' text attention (UNet3D config `temporal_text_attention`). */
const TEMPORAL_TEXT_PARAMETER = /\.(attn|norm)_text\./;

/** Per-parameter learning-rate multipliers: the text encoder and probe, the temporal text attention. */
function lrScales(text: number, temporalText: number): (name: string) => number {
  return (name) =>
    name.startsWith(TEXT_ENCODER_PREFIX) || name.startsWith(TEXT_PROBE_PREFIX)
      ? text
      : TEMPORAL_TEXT_PARAMETER.test(name)
        ? temporalText
        : 1;
}

/** Wraps the batch builder to print the measured seconds per step once a few steps have run. */
function measured(
  opts: StageOptions,
  batch: (step: number) => Promise<Record<string, HostTensor>>,
): (step: number) => Promise<Record<string, HostTensor>> {
  const starts: number[] = [];
  return (step) => {
    starts.push(performance.now());
    if (starts.length === 6) {
      const perStep = (starts[5]! - starts[1]!) / 4000;
      const left = Math.max(0, opts.steps - step);
      logLine(
        opts,
        `unet: measured ${perStep.toFixed(2)} s/step (data + forward/backward + AdamW); ` +
          `${left} steps left ≈ ${formatDuration(left * perStep)}`,
      );
    }
    return batch(step);
  };
}

/** The `kinema train unet` stage; `settings` override the data and model (tests use tiny ones). */
export function createUnetStage(settings: UnetStageSettings = {}): StageDefinition {
  return {
    name: 'unet',
    summary: 'UNet3D (FPS-conditioned) on VAE latents of the world, text from the trained CLIP encoder',
    defaults: { steps: 8000, batch: 4, lr: 2e-4, checkpointEvery: 50 },
    run: (opts) => runUnetStage(settings, opts),
  };
}

export const unetStage = createUnetStage();

/**
 * The data offset (steps) of a run: the settings' own, else, for a run started from another run's checkpoint
 * file, that run's offset + its steps (so a continuation sees new scenes), else 0.
 */
function dataOffsetFor(s: UnetStageSettings, opts: StageOptions): number {
  if (s.dataOffset !== undefined) return s.dataOffset;
  if (opts.init === undefined || !existsSync(opts.init) || statSync(opts.init).isDirectory()) return 0;
  if (existsSync(join(opts.out, 'checkpoints', 'latest.json'))) {
    // Resuming: the run's own saved offset (its extra.data), not the init's again.
    const own = loadLatestCheckpoint(join(opts.out, 'checkpoints'));
    const saved = (own?.extra?.['data'] as { dataOffset?: number } | undefined)?.dataOffset;
    return saved ?? 0;
  }
  const init = loadCheckpoint(opts.init);
  if (init.extra?.['stage'] !== 'unet') return 0; // initialWeights refuses it with its own message
  const before = (init.extra['data'] as { dataOffset?: number } | undefined)?.dataOffset ?? 0;
  return before + init.step;
}

async function runUnetStage(stageSettings: UnetStageSettings, opts: StageOptions): Promise<StageResult> {
  // A recipe (--config) brings settings too; the stage's own (a script's createUnetStage) win over it.
  const { temporalPositions: _p, temporalTextAttention: _t, ...recipe } = opts.unetSettings ?? {};
  const base: UnetStageSettings = { ...recipe, ...stageSettings };
  const s: UnetStageSettings = { ...base, dataOffset: dataOffsetFor(base, opts) };
  const r = resolveUnetSettings(
    {
      ...s,
      predictionType: s.predictionType ?? opts.predictionType,
      trainTextEncoder: s.trainTextEncoder ?? opts.trainTextEncoder,
      textProbe: s.textProbe ?? opts.textProbe,
      textLrScale: s.textLrScale ?? opts.textLrScale,
      temporalTextLrScale: s.temporalTextLrScale ?? opts.temporalTextLrScale,
      frames: s.frames ?? opts.frames,
      frameNoiseShared: s.frameNoiseShared ?? opts.frameNoiseShared,
      zeroTerminalSnr: s.zeroTerminalSnr ?? opts.zeroTerminalSnr,
      motionWeight: s.motionWeight ?? opts.motionWeight,
      trackCentring: s.trackCentring ?? opts.trackCentring,
      timestepShift: s.timestepShift ?? opts.timestepShift,
    },
    opts.batch,
    opts.seed,
  );
  const dir = s.componentsDir ?? opts.exportDir ?? DEFAULT_MODEL_DIR;
  const trainedWith = componentFingerprints(dir);
  if (r.ladder && r.width !== r.height)
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `unet stage: ladder scenes are square, got ${r.width}×${r.height}`,
    );
  const source =
    s.source ??
    (r.ladder
      ? ladderSource(r.ladder.rung, {
          size: r.width,
          frames: r.frames,
          contrast: r.ladder.contrast === true,
          fixedTrack: r.ladder.fixedTrack === true,
        })
      : worldSource(r.seed, r.trackCentring));
  const data = await UnetTrainingData.load(dir, source, r, opts.threads);
  const offset = r.dataOffset ?? 0;
  if (offset > 0)
    logLine(opts, `unet: data offset ${offset} steps (step i draws the data of step i + ${offset})`);
  const config = unetConfigFor(s.unetConfig ?? DEFAULT_UNET_CONFIG, data.latentShape, opts.configOverrides);
  const switches = opts.unetSettings ?? {};
  if (opts.temporalPositions === true || switches.temporalPositions === true)
    config['temporal_positions'] = 'sinusoidal';
  if (opts.temporalTextAttention === true || switches.temporalTextAttention === true)
    config['temporal_text_attention'] = true;
  if (r.frameNoiseShared !== undefined) config['frame_noise_shared'] = r.frameNoiseShared;
  const unet = buildUnet(config, data.textHidden);
  const joint = r.trainTextEncoder
    ? new UnetWithTextEncoder(unet, data.textEncoder.config, { probe: r.textProbe !== undefined })
    : null;
  const model = joint ?? unet;
  const t0 = performance.now();
  const step = await unetGradStep(model, data, opts.threads);
  logLine(
    opts,
    `unet: ${(unet.parameterCount() / 1e6).toFixed(2)} M parameters` +
      (joint
        ? ` + text encoder ${(joint.textEncoder.parameterCount() / 1e6).toFixed(2)} M (fine-tuned)`
        : '') +
      (r.textProbe ? ` + text probe (weight ${r.textProbe.weight}, ${r.textProbe.captions} captions)` : '') +
      `, batch ${data.latentShape.join('×')} latents ` +
      `(${r.frames} frames of ${r.width}×${r.height}) + ${r.images} stills, components from ${dir}; ` +
      `program compiled in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  // A fine-tuned text encoder starts from the components' one (unless --init brings trained text weights); an
  // --init checkpoint without the temporal text attention gets it from the seeded initialisation (its output
  // projections are zero, so the run starts from the checkpoint's function).
  const textAttention = config['temporal_text_attention'] === true;
  if (r.temporalTextLrScale !== undefined && !textAttention)
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      'unet stage: temporalTextLrScale needs the temporal text attention (temporalTextAttention or config ' +
        'temporal_text_attention)',
    );
  const startWeights =
    joint || textAttention
      ? (init: StateDict | undefined): StateDict => {
          const weights: StateDict = new Map(init ?? unet.initParameters(opts.seed));
          if (init && textAttention) {
            for (const [k, v] of unet.initParameters(opts.seed))
              if (TEMPORAL_TEXT_PARAMETER.test(k) && !weights.has(k)) weights.set(k, v);
          }
          for (const [k, v] of joint ? data.textEncoder.stateDict : []) {
            const key = TEXT_ENCODER_PREFIX + k;
            if (!weights.has(key)) weights.set(key, v.slice());
          }
          for (const [k, v] of joint?.probe?.initParameters(opts.seed) ?? []) {
            const key = TEXT_PROBE_PREFIX + k;
            if (!weights.has(key)) weights.set(key, v);
          }
          return weights;
        }
      : undefined;
  const outcome = await runTraining({
    opts,
    label: 'unet',
    initFromFolder: (init) => initFromPipelineFolder(init, config, trainedWith, joint !== null),
    model,
    step,
    batch: measured(
      opts,
      prefetching((i) => data.batch(i + offset)),
    ),
    ...(startWeights && { startWeights }),
    ...((r.textLrScale !== undefined || r.temporalTextLrScale !== undefined) && {
      lrScale: lrScales(r.textLrScale ?? 1, r.temporalTextLrScale ?? 1),
    }),
    warmupSteps: s.warmupSteps ?? 200,
    weightDecay: 0.01,
    clipNorm: 1,
    ema: { decay: s.emaDecay ?? 0.999, warmup: true },
    extra: { stage: 'unet', unet_config: config, data: { ...r }, components: trainedWith },
  });
  const exported: string[] = [];
  if (outcome.completed && opts.exportDir) {
    checkSameComponents(opts.exportDir, trainedWith, r.trainTextEncoder === true);
    exported.push(
      ...exportUnetPipeline(
        opts.exportDir,
        config,
        outcome.finalParams,
        r.predictionType,
        r.zeroTerminalSnr === true,
        r.noiseShift ?? 1,
      ),
    );
  }
  const metrics = await writeRunReport(
    opts,
    `UNet3D ${r.predictionType === 'epsilon' ? 'noise' : 'v'}-prediction MSE`,
    outcome.history,
    {
      parameters: unet.parameterCount(),
      frames: r.frames,
      images_per_step: r.images,
      seconds_per_step: secondsPerStep(outcome.history),
    },
  );
  return stageResult(outcome, metrics, exported);
}
