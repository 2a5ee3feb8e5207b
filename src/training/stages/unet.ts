// The default model's UNet stage (`kinema train unet`): a small UNet3DConditionModel with VideoCrafter1 FPS
// conditioning learns v-prediction (or epsilon; DDPM schedule, MSE) on latent videos of the procedural world.
// Latents come from the trained VAE (posterior sample × scaling_factor), text conditioning from the trained
// CLIP text encoder's last_hidden_state (cached per caption); captions become "" with probability 0.1 so that
// classifier-free guidance works at generation. Joint image–video training: every step trains a batch of
// clips plus a few image-mode stills (1-frame videos with still captions) through the same weights. The data
// of step i is a pure function of (seed, i), so a resumed run continues the identical loss curve. With
// --train-text-encoder the text encoder is trained too (optionally at its own learning rate, and with a text
// probe loss that makes every attribute a caption names decodable from its states).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as op from '../../engine/ops.js';
import type { Tensor } from '../../engine/tensor.js';
import { hostTensor } from '../../engine/runtime.js';
import type { HostTensor } from '../../engine/runtime.js';
import { Generator } from '../../engine/random.js';
import { CLIPTokenizer } from '../../models/clip/tokenizer.js';
import { CLIPTextModel, ClipTextRoot } from '../../models/clip/text_model.js';
import { parseClipTextConfig } from '../../models/clip/config.js';
import type { ClipTextConfig } from '../../models/clip/config.js';
import { AutoencoderKL } from '../../models/vae/autoencoder_kl.js';
import { UNet3DConditionModel } from '../../models/unet3d/unet3d.js';
import { DDPMScheduler } from '../../schedulers/ddpm.js';
import { snrShiftedBetas } from '../../schedulers/scheduling_utils.js';
import { checkFrameNoiseShared, mixFrameNoise } from '../../schedulers/frame_noise.js';
import { findWeightsFile, loadStateDict, readConfig } from '../../io/model_folder.js';
import { Module } from '../../nn/module.js';
import type { ParamSpec, StateDict } from '../../nn/module.js';
import { formatDuration } from '../../cli/progress.js';
import { GradStep } from '../trainer.js';
import { loadLatestCheckpoint } from '../checkpoint.js';
import { exportComponent, writeJsonAtomic } from '../export.js';
import {
  TRAIN_PREDICTIONS,
  indexedGenerator,
  logLine,
  prefetching,
  runTraining,
  withoutSwitchableKeys,
  writeRunReport,
} from './common.js';
import type { StageDefinition, StageOptions, StageResult, TrainPrediction } from './common.js';
import { checkTrackCentring, toFloatCHW, worldSample } from '../data/world.js';
import {
  CAPTION_ATTRIBUTE_CLASSES,
  CAPTION_ATTRIBUTE_GROUPS,
  captionAttributeTargets,
} from '../data/caption_attributes.js';

/** The shipped default model folder (repo/models/default). */
export const DEFAULT_MODEL_DIR = resolvePath(
  dirname(fileURLToPath(import.meta.url)),
  '../../../models/default',
);

/** The default model's UNet (≈2.5 M parameters): three levels, cross-attention at the two finer ones. */
export const DEFAULT_UNET_CONFIG: Readonly<Record<string, unknown>> = {
  _class_name: 'UNet3DConditionModel',
  _diffusers_version: '0.35.2',
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [32, 64, 64],
  cross_attention_dim: 64,
  down_block_types: ['CrossAttnDownBlock3D', 'CrossAttnDownBlock3D', 'DownBlock3D'],
  downsample_padding: 1,
  fps_cond: true,
  in_channels: 4,
  layers_per_block: 1,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 8,
  out_channels: 4,
  sample_size: 16,
  up_block_types: ['UpBlock3D', 'CrossAttnUpBlock3D', 'CrossAttnUpBlock3D'],
};

/** The training noise schedule (text-to-video-ms-1.7b's betas): DDPM, scaled_linear 0.00085–0.012, 1000 steps. */
export const TRAIN_SCHEDULER_CONFIG: Readonly<Record<string, unknown>> = {
  _class_name: 'DDPMScheduler',
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  clip_sample: false,
};

/**
 * The training schedule, with the betas rescaled to zero terminal SNR when asked, and with every step's SNR
 * divided by noiseShift² (`snrShiftedBetas`, written as trained_betas) when noiseShift ≠ 1.
 */
export function trainSchedulerConfig(zeroTerminalSnr: boolean, noiseShift = 1): Record<string, unknown> {
  return {
    ...TRAIN_SCHEDULER_CONFIG,
    ...(noiseShift !== 1 && { trained_betas: Array.from(noiseShiftedBetas(noiseShift)) }),
    ...(zeroTerminalSnr && { rescale_betas_zero_snr: true }),
  };
}

/** ModelScope's scaled-linear betas with their SNR divided by s². */
function noiseShiftedBetas(s: number): Float32Array {
  const base = DDPMScheduler.fromConfig(TRAIN_SCHEDULER_CONFIG).betas;
  return snrShiftedBetas(base, s);
}

/** The shipped sampler: DDIM on the same betas, configured like text-to-video-ms-1.7b's scheduler folder. */
export const DEFAULT_SCHEDULER_CONFIG: Readonly<Record<string, unknown>> = {
  _class_name: 'DDIMScheduler',
  _diffusers_version: '0.35.2',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  timestep_spacing: 'leading',
  trained_betas: null,
};

/** A diffusers TextToVideoSDPipeline folder's component table. */
export const DEFAULT_MODEL_INDEX: Readonly<Record<string, unknown>> = {
  _class_name: 'TextToVideoSDPipeline',
  _diffusers_version: '0.35.2',
  scheduler: ['diffusers', 'DDIMScheduler'],
  text_encoder: ['transformers', 'CLIPTextModel'],
  tokenizer: ['transformers', 'CLIPTokenizer'],
  unet: ['diffusers', 'UNet3DConditionModel'],
  vae: ['diffusers', 'AutoencoderKL'],
};

/** One training example: RGB24 frames (width·height·3 bytes each) and the caption that describes them. */
export interface TrainingClip {
  readonly caption: string;
  readonly frames: Uint8Array[];
}

export interface ClipRequest {
  readonly width: number;
  readonly height: number;
  /** Frames wanted: the clip length, or 1 for an image-mode still. */
  readonly frames: number;
  /** A still image with a caption that names no motion (joint image–video training). */
  readonly imageMode: boolean;
}

/** Deterministic data: the example with this index. */
export type ClipSource = (index: number, request: ClipRequest) => TrainingClip | Promise<TrainingClip>;

export interface UnetStageSettings {
  /** Folder holding the trained tokenizer/, text_encoder/ and vae/ (default: the export folder, else models/default). */
  readonly componentsDir?: string;
  /** Training data (default: the procedural world's training split). */
  readonly source?: ClipSource;
  /** Frames per training clip (the temporal layers generalize to more at generation). */
  readonly frames?: number;
  readonly width?: number;
  readonly height?: number;
  /** Image-mode stills (1-frame videos) trained in every step next to the batch of clips. */
  readonly images?: number;
  readonly warmupSteps?: number;
  /** Probability that a caption is replaced by "" (classifier-free guidance training). */
  readonly captionDropout?: number;
  /** FPS conditioning value of the training clips. */
  readonly fps?: number;
  readonly emaDecay?: number;
  /**
   * What the UNet learns to predict: 'v_prediction' (default; v = √ᾱ·ε − √(1−ᾱ)·x₀, whose loss weighs the
   * high-noise steps that decide layout, colour and the agreement between frames) or 'epsilon' (the noise).
   * Written into the exported scheduler config as prediction_type.
   */
  readonly predictionType?: TrainPrediction;
  /** UNet config.json object (default DEFAULT_UNET_CONFIG); cross_attention_dim must match the text encoder. */
  readonly unetConfig?: Readonly<Record<string, unknown>>;
  /**
   * Fine-tune the text encoder with the UNet: its weights start from the components' text encoder, the UNet
   * loss trains both, and the export writes text_encoder/ next to unet/. The world's contrastive CLIP learns
   * what one frame shows (its text states barely tell "left" from "right" or a circle from a square), so a
   * UNet conditioned on the frozen encoder cannot learn motion direction or shape from the prompt.
   */
  readonly trainTextEncoder?: boolean;
  /**
   * Weight of the text probe loss (needs trainTextEncoder; 0 or absent: none). A cosine classifier of fixed
   * scale (`TextProbe`) reads every attribute a caption names (each object's shape, colour, size, motion,
   * speed; the number of objects; the background colour; the camera pan) from the mean of the text encoder's
   * states over the 77 positions, and its cross-entropy is added to the UNet loss: the text encoder must then
   * keep those attributes apart, which the diffusion loss alone does not make it do. Not exported.
   */
  readonly textProbe?: number;
  /** Captions the probe reads per step (default 32), drawn apart from the clips' and stills'. */
  readonly probeCaptions?: number;
  /**
   * The text encoder's (and the probe's) learning rate as a multiple of the UNet's (default 1; needs
   * trainTextEncoder): lets the text states reorganise faster than the UNet changes.
   */
  readonly textLrScale?: number;
  /**
   * The learning rate of the temporal transformers' text attention (`attn_text`, `norm_text`; needs
   * `temporal_text_attention`) as a multiple of the UNet's (default 1): the branch starts at zero output, and
   * its queries and keys get gradients only as its output projection grows, so a new branch learns slowly.
   */
  readonly temporalTextLrScale?: number;
  /**
   * Fraction ρ in [0, 1) of the clips' noise variance shared by all frames of a clip (PYoCo's mixed noise
   * prior, `schedulers/frame_noise.ts`); written into the UNet config as `frame_noise_shared` so that the
   * pipeline samples from the same kind of noise. 0 or absent: independent noise per frame.
   */
  readonly frameNoiseShared?: number;
  /**
   * Train on the betas rescaled to zero terminal SNR (Lin et al. 2024, diffusers' `rescale_betas_zero_snr`):
   * at t = 999 the input is pure noise, as the sampler's first step sees it, instead of keeping 7 % of the
   * clip, so the UNet cannot lean on that leaked signal. Needs v-prediction; the export writes the matching
   * DDIM config (rescaled betas, trailing timesteps, so sampling starts at t = 999).
   */
  readonly zeroTerminalSnr?: boolean;
  /**
   * Weight β ≥ 0 of the motion term (v-prediction only; 0 or absent: none). The part of a clip's error that
   * differs between its frames (the error minus its mean over the frames) is what motion is made of; this
   * term adds β times its mean square measured on the x₀ estimate (x̂₀ − x₀ = −√(1−ᾱ_t)·(v̂ − v), so each
   * clip's weight is β·(1−ᾱ_t): full at high noise, where layouts and trajectories are decided, and vanishing
   * at low noise, where the frame-independent noise dominates the error). The weight does not depend on the
   * data, so the loss's minimiser (the conditional mean) is unchanged; only the share of the gradient spent
   * on frame-to-frame change grows. Stills have no such part.
   */
  readonly motionWeight?: number;
  /**
   * The world's `trackCentring` k in (0, 1] for the training clips (default 1; ignored with a custom `source`):
   * a straight-line motion starts within k times the free room around the start that centres its track, along
   * the axes it moves on. With uniform starts, the mean of the clips of one caption barely depends on the
   * direction word (an object moving left is as likely to be anywhere in any frame as one moving right), so at
   * the highest noise, where the input says nothing, the loss gains almost nothing from reading that word;
   * with centred tracks the object is right of the centre in the first frames and left of it in the last, and
   * the word decides where the object is in each frame.
   */
  readonly trackCentring?: number;
  /**
   * Timestep shift s > 0 (default 1: t uniform over 0…999): a training sample's timestep is ⌊T·s·u/(1 + (s − 1)·u)⌋
   * for u uniform in [0, 1), the shift of Stable Diffusion 3 (Esser et al. 2024). s > 1 spends more of the
   * samples at high noise (s = 3: a quarter at t ≥ 900 instead of a tenth), where the input says little and
   * the caption has to decide the layout and the direction of motion; the minimiser at each t is unchanged.
   */
  readonly timestepShift?: number;
  /**
   * Share p in [0, 1) of the samples trained at the last timestep t = T − 1 exactly (default 0). Under zero
   * terminal SNR that input is pure noise, the one place where only the caption can say what the clip shows:
   * at every t < T − 1 even a faint trace of the clip in the input predicts it better than the words, so a
   * UNet trained on uniform (or shifted) timesteps learns to read the input and ignore the direction word
   * (measured by `npm run check:direction`). The other samples keep their (shifted) timestep distribution.
   */
  readonly terminalShare?: number;
  /**
   * Noise-schedule shift s ≥ 1 (default 1): every timestep's signal-to-noise ratio divided by s² (trained and
   * exported as the scheduler's trained_betas, so sampling uses the same schedule). Unlike timestepShift, which
   * only draws more samples at high t, this widens the band of timesteps whose input no longer shows the clip
   * — where only the caption can say which way things move.
   */
  readonly noiseShift?: number;
}

export interface Resolved {
  batchSize: number;
  frames: number;
  width: number;
  height: number;
  images: number;
  captionDropout: number;
  fps: number;
  seed: number;
  predictionType: TrainPrediction;
  /** Present (true) only for runs that fine-tune the text encoder, so older runs' saved settings still match. */
  trainTextEncoder?: true;
  /** Present only for runs with a text probe (same reason). */
  textProbe?: { weight: number; captions: number };
  /** Present only when not 1 (same reason). */
  textLrScale?: number;
  /** Present only when not 1 (same reason). */
  temporalTextLrScale?: number;
  /** Present only when not 0 (same reason). */
  frameNoiseShared?: number;
  /** Present (true) only for zero-terminal-SNR runs (same reason). */
  zeroTerminalSnr?: true;
  /** Present only when not 0 (same reason). */
  motionWeight?: number;
  /** Present only when not 1 (same reason). */
  trackCentring?: number;
  /** Present only when not 1 (same reason). */
  timestepShift?: number;
  /** Present only when not 0 (same reason). */
  terminalShare?: number;
  /** Present only when not 1 (same reason). */
  noiseShift?: number;
}

/** The stage settings with defaults filled in and checked (`batch` clips per step). */
export function resolveUnetSettings(o: UnetStageSettings, batch: number, seed: number): Resolved {
  const r: Resolved = {
    batchSize: batch,
    frames: o.frames ?? 8,
    width: o.width ?? 64,
    height: o.height ?? 64,
    images: o.images ?? 4,
    captionDropout: o.captionDropout ?? 0.1,
    fps: o.fps ?? 8,
    seed,
    predictionType: o.predictionType ?? 'v_prediction',
    ...(o.trainTextEncoder === true && { trainTextEncoder: true as const }),
    ...(o.textProbe !== undefined &&
      o.textProbe !== 0 && { textProbe: { weight: o.textProbe, captions: o.probeCaptions ?? 32 } }),
    ...(o.textLrScale !== undefined && o.textLrScale !== 1 && { textLrScale: o.textLrScale }),
    ...(o.temporalTextLrScale !== undefined &&
      o.temporalTextLrScale !== 1 && { temporalTextLrScale: o.temporalTextLrScale }),
    ...(o.frameNoiseShared !== undefined &&
      o.frameNoiseShared !== 0 && {
        frameNoiseShared: checkFrameNoiseShared(o.frameNoiseShared, 'unet stage: frameNoiseShared'),
      }),
    ...(o.zeroTerminalSnr === true && { zeroTerminalSnr: true as const }),
    ...(o.motionWeight !== undefined && o.motionWeight !== 0 && { motionWeight: o.motionWeight }),
    ...(o.trackCentring !== undefined && o.trackCentring !== 1 && { trackCentring: o.trackCentring }),
    ...(o.timestepShift !== undefined && o.timestepShift !== 1 && { timestepShift: o.timestepShift }),
    ...(o.terminalShare !== undefined && o.terminalShare !== 0 && { terminalShare: o.terminalShare }),
    ...(o.noiseShift !== undefined && o.noiseShift !== 1 && { noiseShift: o.noiseShift }),
  };
  if (r.noiseShift !== undefined && !(r.noiseShift >= 1 && Number.isFinite(r.noiseShift)))
    throw new RangeError(`unet stage: noiseShift must be a number ≥ 1, got ${r.noiseShift}`);
  if (r.terminalShare !== undefined && !(r.terminalShare > 0 && r.terminalShare < 1))
    throw new RangeError(`unet stage: terminalShare must be in [0, 1), got ${r.terminalShare}`);
  if (r.timestepShift !== undefined && !(r.timestepShift > 0 && Number.isFinite(r.timestepShift)))
    throw new RangeError(`unet stage: timestepShift must be a positive number, got ${r.timestepShift}`);
  if (r.trackCentring !== undefined) checkTrackCentring(r.trackCentring, 'unet stage');
  if (r.motionWeight !== undefined) {
    if (!(r.motionWeight > 0 && Number.isFinite(r.motionWeight)))
      throw new RangeError(`unet stage: motionWeight must be a non-negative number, got ${r.motionWeight}`);
    if (r.predictionType !== 'v_prediction')
      throw new Error('unet stage: motionWeight needs v_prediction (its weight is set on the x₀ error)');
  }
  if (r.zeroTerminalSnr && r.predictionType === 'epsilon')
    throw new Error('unet stage: zeroTerminalSnr needs v_prediction (ε is undefined at zero SNR)');
  if (r.textLrScale !== undefined) {
    if (!(r.textLrScale > 0 && Number.isFinite(r.textLrScale)))
      throw new RangeError(`unet stage: textLrScale must be a positive number, got ${r.textLrScale}`);
    if (!r.trainTextEncoder)
      throw new Error(
        'unet stage: textLrScale needs the text encoder trained with the UNet (trainTextEncoder)',
      );
  }
  if (
    r.temporalTextLrScale !== undefined &&
    !(r.temporalTextLrScale > 0 && Number.isFinite(r.temporalTextLrScale))
  )
    throw new RangeError(
      `unet stage: temporalTextLrScale must be a positive number, got ${r.temporalTextLrScale}`,
    );
  if (r.textProbe) {
    if (!(r.textProbe.weight > 0 && Number.isFinite(r.textProbe.weight)))
      throw new RangeError(`unet stage: textProbe must be a positive weight, got ${r.textProbe.weight}`);
    if (!r.trainTextEncoder)
      throw new Error(
        'unet stage: a text probe needs the text encoder trained with the UNet (trainTextEncoder)',
      );
    if (!Number.isInteger(r.textProbe.captions) || r.textProbe.captions < 1)
      throw new RangeError(
        `unet stage: probeCaptions must be a positive integer, got ${r.textProbe.captions}`,
      );
  }
  if (!TRAIN_PREDICTIONS.includes(r.predictionType))
    throw new RangeError(
      `unet stage: predictionType must be 'epsilon' or 'v_prediction', got ${String(r.predictionType)}`,
    );
  for (const k of ['batchSize', 'frames', 'width', 'height', 'fps'] as const) {
    if (!Number.isInteger(r[k]) || r[k] < 1)
      throw new RangeError(`unet stage: ${k} must be a positive integer, got ${r[k]}`);
  }
  if (!Number.isInteger(r.images) || r.images < 0)
    throw new RangeError(`unet stage: images must be a non-negative integer, got ${r.images}`);
  if (!(r.captionDropout >= 0 && r.captionDropout <= 1))
    throw new RangeError(`unet stage: captionDropout must be in [0, 1], got ${r.captionDropout}`);
  if (!Number.isSafeInteger(r.seed) || r.seed < 0 || r.seed >= 2 ** 31)
    throw new RangeError(`unet stage: seed must be an integer in [0, 2^31), got ${r.seed}`);
  return r;
}

/**
 * A training timestep from one uniform u in [0, 1): T − 1 when u < p (the terminal share), else SD3's shifted
 * time of u rescaled to [0, 1). One uniform per sample either way, so other draws do not move.
 */
export function trainingTimestep(u: number, T: number, shift: number, terminalShare: number): number {
  if (u < terminalShare) return T - 1;
  const v = (u - terminalShare) / (1 - terminalShare);
  return Math.min(T - 1, Math.floor(shiftedTime(v, shift) * T));
}

/** SD3's timestep shift of u in [0, 1): s·u / (1 + (s − 1)·u), u itself for s = 1. */
export function shiftedTime(u: number, s: number): number {
  return s === 1 ? u : (s * u) / (1 + (s - 1) * u);
}

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
      throw new Error(`unet stage: ${r.width}×${r.height} is not divisible by the VAE factor ${f}`);
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
        throw new Error(
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
    throw new Error(`unet stage: the data source gave ${clip.frames.length} frames, expected ${frames}`);
  for (const fr of clip.frames) {
    if (fr.length !== width * height * 3)
      throw new Error(`unet stage: a frame has ${fr.length} bytes, expected ${width}×${height}×3`);
  }
}

/** The UNet the stage trains (config checked against the text encoder width). */
export function buildUnet(
  config: Readonly<Record<string, unknown>>,
  textHidden: number,
): UNet3DConditionModel {
  const unet = UNet3DConditionModel.fromConfig({ ...config });
  if (unet.config.crossAttentionDim !== textHidden)
    throw new Error(
      `unet stage: cross_attention_dim ${unet.config.crossAttentionDim} differs from the text encoder's hidden size ${textHidden}`,
    );
  if (!unet.config.fpsCond) throw new Error('unet stage: the UNet config must set fps_cond: true');
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
  if (h !== w) throw new Error(`unet stage: latent frames must be square, got ${h}×${w}`);
  const out: Record<string, unknown> = { ...config, ...overrides };
  for (const [key, want] of [
    ['in_channels', channels],
    ['out_channels', channels],
    ['sample_size', h],
  ] as const) {
    if (key in overrides && overrides[key] !== want)
      throw new Error(
        `unet stage: the config sets ${key} ${JSON.stringify(overrides[key])}, but the components' VAE gives ` +
          `${want} (latents ${channels}×${h}×${w}); leave ${key} out to follow the VAE`,
      );
    out[key] = want;
  }
  return out;
}

/** Key prefix of the text encoder's weights in a run that fine-tunes it with the UNet. */
export const TEXT_ENCODER_PREFIX = 'text_encoder.';
/** Key prefix of the text probe's weights (trained, checkpointed, never exported). */
export const TEXT_PROBE_PREFIX = 'text_probe.';

/**
 * The parameters a run trains when it fine-tunes the text encoder too: the UNet's under their own names (as
 * in a UNet-only run, so `--init` accepts either kind of checkpoint) and the text encoder's (transformers'
 * `text_model.*` keys) under `text_encoder.`.
 */
export class UnetWithTextEncoder extends Module {
  readonly textEncoder: ClipTextRoot;
  /** The text probe (`text_probe.*`): caption attributes from the mean text state, when the run has one. */
  readonly probe: TextProbe | null;
  constructor(
    readonly unet: UNet3DConditionModel,
    textConfig: ClipTextConfig,
    opts: { probe?: boolean } = {},
  ) {
    super();
    this.textEncoder = this.child(TEXT_ENCODER_PREFIX.slice(0, -1), new ClipTextRoot(textConfig, false));
    this.probe =
      opts.probe === true
        ? this.child(TEXT_PROBE_PREFIX.slice(0, -1), new TextProbe(textConfig.hiddenSize))
        : null;
  }

  override namedParameters(prefix = ''): Map<string, ParamSpec> {
    const out = this.unet.namedParameters(prefix);
    for (const [k, spec] of super.namedParameters(prefix)) out.set(k, spec);
    return out;
  }
}

/** The UNet part and the text encoder part (keys without the prefix) of a run's weights; a probe's are left out. */
export function splitJointWeights(weights: StateDict): { unet: StateDict; textEncoder: StateDict } {
  const unet: StateDict = new Map();
  const textEncoder: StateDict = new Map();
  for (const [k, v] of weights) {
    if (k.startsWith(TEXT_ENCODER_PREFIX)) textEncoder.set(k.slice(TEXT_ENCODER_PREFIX.length), v);
    else if (!k.startsWith(TEXT_PROBE_PREFIX)) unet.set(k, v);
  }
  return { unet, textEncoder };
}

/** Scale of the text probe's cosine logits (fixed, so the probe cannot grow its way to confident answers). */
export const TEXT_PROBE_SCALE = 10;

/** The text probe: one weight row per attribute class, read as a cosine classifier of fixed scale. */
export class TextProbe extends Module {
  constructor(hidden: number) {
    super();
    this.declare('weight', [CAPTION_ATTRIBUTE_CLASSES, hidden], { kind: 'normal', std: 1 });
  }
  /** Logits [N, classes] of text states [N, T, D]: scale · cos(mean over T, class row). */
  forward(states: Tensor): Tensor {
    const pooled = op.l2Normalize(op.mean(states, [1]), 1, 1e-12);
    const classes = op.l2Normalize(this.p('weight'), 1, 1e-12);
    return op.mul(op.matmul(pooled, op.transpose(classes, [1, 0])), TEXT_PROBE_SCALE);
  }
}

/**
 * The text probe's loss: the mean over the batch of the summed cross-entropies of every attribute group a
 * caption names. The logits are cosines, times TEXT_PROBE_SCALE, between the text states [N, 77, D] averaged
 * over the positions and the rows of the probe's weight [classes, D]: a cosine classifier of fixed scale
 * cannot reach confident answers by growing its weights on a small difference, so the text states themselves
 * must point apart for captions that name different attributes. `targets` [N, classes] holds one-hot rows
 * per named group and zeros for the groups a caption leaves out.
 */
export function textProbeLoss(probe: TextProbe, states: Tensor, targets: Tensor): Tensor {
  const n = states.shape[0]!;
  const logits = probe.forward(states);
  const sizes = CAPTION_ATTRIBUTE_GROUPS.map((g) => g.classes.length);
  const parts = op.split(logits, sizes, 1);
  const wanted = op.split(targets, sizes, 1);
  const nll = parts.map((l, i) => {
    const logProb = op.sub(l, op.logSumExp(l, 1));
    return op.neg(op.sum(op.mul(logProb, wanted[i]!), [0, 1]));
  });
  return op.div(
    nll.reduce((x, y) => op.add(x, y)),
    n,
  );
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
): Promise<GradStep> {
  const unet = model instanceof UnetWithTextEncoder ? model.unet : model;
  const text = model instanceof UnetWithTextEncoder ? model.textEncoder : null;
  const probe = model instanceof UnetWithTextEncoder ? model.probe : null;
  const probeWeight = data.probe?.weight ?? 0;
  if ((probe !== null) !== probeWeight > 0)
    throw new Error(
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
    threads > 0 ? { threads } : {},
  );
}

/** The frozen components the UNet is trained against. */
const CONDITIONING_COMPONENTS = ['tokenizer', 'text_encoder', 'vae'] as const;

const TOKENIZER_FILES = [
  'tokenizer.json',
  'vocab.json',
  'merges.txt',
  'tokenizer_config.json',
  'special_tokens_map.json',
];

/** The files that define a component: the tokenizer's files, or a model's config.json and weights file. */
function definingFiles(dir: string, component: string): string[] {
  if (component === 'tokenizer') return TOKENIZER_FILES.map((f) => join(dir, f)).filter((f) => existsSync(f));
  return [join(dir, 'config.json'), findWeightsFile(dir)];
}

/**
 * SHA-256 (first 16 hex digits) over each conditioning component's defining files (names and bytes): a UNet
 * only works with the exact VAE and text encoder it was trained against.
 */
export function componentFingerprints(pipelineDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of CONDITIONING_COMPONENTS) {
    const dir = join(pipelineDir, c);
    if (!existsSync(dir))
      throw new Error(
        `unet stage: ${pipelineDir} has no ${c}/ folder (train and export the CLIP and VAE stages first)`,
      );
    const hash = createHash('sha256');
    for (const file of definingFiles(dir, c)) hash.update(`${basename(file)}\0`).update(readFileSync(file));
    out[c] = hash.digest('hex').slice(0, 16);
  }
  return out;
}

/** JSON with object keys sorted, so that two configs compare by content rather than key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/**
 * The starting weights of a run whose `--init` is a pipeline folder (e.g. models/default, or a folder a run
 * exported into): its `unet/` weights as float32 and, when the run fine-tunes the text encoder, its
 * `text_encoder/` weights under `text_encoder.`. The folder's UNet config must be the run's up to the switchable
 * keys (a folder with the temporal text attention needs a run with it), and its VAE and tokenizer, and its text
 * encoder when the run does not train one, must be those the run trains against (`trainedWith`: their
 * `componentFingerprints`).
 */
export function initFromPipelineFolder(
  dir: string,
  config: Readonly<Record<string, unknown>>,
  trainedWith: Record<string, string>,
  trainsText: boolean,
): StateDict {
  const unetDir = join(dir, 'unet');
  if (!existsSync(join(unetDir, 'config.json')))
    throw new Error(
      `--init: ${dir} has no unet/config.json (give a pipeline folder such as models/default, or a checkpoint file)`,
    );
  const theirs = readConfig(unetDir);
  const comparable = (c: Readonly<Record<string, unknown>>): string => {
    const { _diffusers_version: _version, ...rest } = c;
    return canonicalJson(withoutSwitchableKeys(rest));
  };
  if (comparable(theirs) !== comparable(config))
    throw new Error(
      `--init: ${unetDir}/config.json differs from this run's UNet config (${canonicalJson(theirs)}, this run: ` +
        `${canonicalJson(config)})`,
    );
  if (theirs['temporal_text_attention'] === true && config['temporal_text_attention'] !== true)
    throw new Error(
      `--init: ${dir}'s UNet has the temporal text attention; pass --temporal-text-attention to keep it`,
    );
  const differ = changedComponents(componentFingerprints(dir), trainedWith, trainsText);
  if (differ.length > 0)
    throw new Error(
      `--init: ${dir}'s ${differ.join(', ')} differ from the one(s) this run trains against; ` +
        'the UNet only fits the components it was trained with',
    );
  const weights = loadStateDict(unetDir).stateDict;
  if (trainsText)
    for (const [k, v] of loadStateDict(join(dir, 'text_encoder')).stateDict)
      weights.set(TEXT_ENCODER_PREFIX + k, v);
  return weights;
}

/** The conditioning components whose fingerprints differ (the text encoder not, when the run trains it). */
function changedComponents(
  a: Record<string, unknown>,
  b: Record<string, unknown>,
  trainsText: boolean,
): string[] {
  return CONDITIONING_COMPONENTS.filter((c) => a[c] !== b[c] && !(trainsText && c === 'text_encoder'));
}

/**
 * Refuses to export a UNet into a folder whose VAE / tokenizer / text encoder differ from its training (the
 * text encoder is not compared when the run trained it: the export replaces it).
 */
function checkSameComponents(pipelineDir: string, trainedWith: unknown, trainsText: boolean): void {
  const now = componentFingerprints(pipelineDir);
  const saved = (trainedWith ?? {}) as Record<string, unknown>;
  const changed = changedComponents(now, saved, trainsText);
  if (changed.length > 0)
    throw new Error(
      `unet export: ${pipelineDir}'s ${changed.join(', ')} differ from the one(s) the UNet was trained with ` +
        `(fingerprints now ${JSON.stringify(now)}, at training ${JSON.stringify(saved)}); retrain the UNet ` +
        'against the current components or restore them',
    );
}

/** The learning-rate multiplier of each parameter: `scale` for the text encoder's and the probe's, else 1. */
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

async function runUnetStage(s: UnetStageSettings, opts: StageOptions): Promise<StageResult> {
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
  const data = await UnetTrainingData.load(
    dir,
    s.source ?? worldSource(r.seed, r.trackCentring),
    r,
    opts.threads,
  );
  const config = unetConfigFor(s.unetConfig ?? DEFAULT_UNET_CONFIG, data.latentShape, opts.configOverrides);
  if (opts.temporalPositions === true) config['temporal_positions'] = 'sinusoidal';
  if (opts.temporalTextAttention === true) config['temporal_text_attention'] = true;
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
    throw new Error(
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
      prefetching((i) => data.batch(i)),
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
  const steps = outcome.history.losses.length;
  const metrics = await writeRunReport(
    opts,
    `UNet3D ${r.predictionType === 'epsilon' ? 'noise' : 'v'}-prediction MSE`,
    outcome.history,
    {
      parameters: unet.parameterCount(),
      frames: r.frames,
      images_per_step: r.images,
      seconds_per_step: steps > 0 ? Math.round((outcome.history.totalSeconds / steps) * 1000) / 1000 : null,
    },
  );
  return {
    completed: outcome.completed,
    step: outcome.result.endStep,
    losses: outcome.history.losses,
    metrics,
    exported,
  };
}

/**
 * Writes `pipelineDir/unet` (fp16 EMA weights + config.json), `pipelineDir/scheduler/scheduler_config.json`
 * (DDIM on the training betas) and `pipelineDir/model_index.json`; when the weights hold a fine-tuned text
 * encoder (`text_encoder.*` keys), also `pipelineDir/text_encoder` (its config.json kept). Returns the
 * folders written.
 */
export function exportUnetPipeline(
  pipelineDir: string,
  config: Readonly<Record<string, unknown>>,
  weights: StateDict,
  predictionType: TrainPrediction,
  zeroTerminalSnr = false,
  noiseShift = 1,
): string[] {
  const parts = splitJointWeights(weights);
  const written: string[] = [];
  if (parts.textEncoder.size > 0) {
    const textDir = join(pipelineDir, 'text_encoder');
    const textConfig = readConfig(textDir);
    const textModule = new ClipTextRoot(parseClipTextConfig(textConfig, `${textDir}/config.json`), false);
    exportComponent(textDir, {
      config: textConfig,
      stateDict: parts.textEncoder,
      module: textModule,
      weightsBasename: 'model',
    });
    written.push(textDir);
  }
  const module = UNet3DConditionModel.fromConfig({ ...config });
  exportComponent(join(pipelineDir, 'unet'), {
    config: { ...config },
    stateDict: parts.unet,
    module,
    weightsBasename: 'diffusion_pytorch_model',
  });
  mkdirSync(join(pipelineDir, 'scheduler'), { recursive: true });
  writeJsonAtomic(join(pipelineDir, 'scheduler', 'scheduler_config.json'), {
    ...DEFAULT_SCHEDULER_CONFIG,
    prediction_type: predictionType,
    ...(zeroTerminalSnr && { rescale_betas_zero_snr: true, timestep_spacing: 'trailing' }),
    ...(noiseShift !== 1 && { trained_betas: Array.from(noiseShiftedBetas(noiseShift)) }),
  });
  writeJsonAtomic(join(pipelineDir, 'model_index.json'), DEFAULT_MODEL_INDEX);
  written.push(join(pipelineDir, 'unet'), join(pipelineDir, 'scheduler'));
  return written;
}

/** Exports the EMA weights of a run's latest checkpoint (`out/checkpoints`) into `pipelineDir`; returns its step. */
export function exportUnetCheckpoint(out: string, pipelineDir: string): number {
  const ckpt = loadLatestCheckpoint(join(out, 'checkpoints'));
  if (!ckpt) throw new Error(`unet export: no checkpoint in ${join(out, 'checkpoints')} (train first)`);
  const config = ckpt.extra?.['unet_config'];
  if (
    ckpt.extra?.['stage'] !== 'unet' ||
    typeof config !== 'object' ||
    config === null ||
    Array.isArray(config)
  )
    throw new Error(`unet export: ${ckpt.path} is not a UNet stage checkpoint`);
  const data = ckpt.extra['data'] as
    | {
        predictionType?: TrainPrediction;
        trainTextEncoder?: boolean;
        zeroTerminalSnr?: boolean;
        noiseShift?: number;
      }
    | undefined;
  checkSameComponents(pipelineDir, ckpt.extra['components'], data?.trainTextEncoder === true);
  exportUnetPipeline(
    pipelineDir,
    config as Record<string, unknown>,
    ckpt.ema ? ckpt.ema.stateDict() : ckpt.params,
    data?.predictionType ?? 'epsilon',
    data?.zeroTerminalSnr === true,
    data?.noiseShift ?? 1,
  );
  return ckpt.step;
}
