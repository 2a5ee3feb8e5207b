// The UNet stage's settings: the default model's UNet config, the training and shipped scheduler configs, the
// stage options with their checks (`resolveUnetSettings`) and the training-timestep law (shift, terminal share).
import { dirname, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DDPMScheduler } from '../../schedulers/ddpm.js';
import { snrShiftedBetas } from '../../schedulers/scheduling_utils.js';
import { checkFrameNoiseShared } from '../../schedulers/frame_noise.js';
import { TRAIN_PREDICTIONS } from './common.js';
import type { TrainPrediction } from './common.js';
import { checkTrackCentring } from '../data/world.js';
import { KinemaError } from '../../errors.js';

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
export function noiseShiftedBetas(s: number): Float32Array {
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
  /**
   * Train on a rung 0–4 of the learnability ladder (`training/data/ladder.ts`) instead of the world's training
   * split (ignored with a custom `source`).
   */
  readonly ladderRung?: number;
  /** With ladderRung: contrast groups (4 consecutive samples = one scene in the 4 directions). */
  readonly contrast?: boolean;
  /** With ladderRung: tracks centred across too (rung 0: exactly 4 clips). */
  readonly fixedTrack?: boolean;
  /**
   * Data offset in steps (default 0): step i of this run draws the clips, stills, probe captions and noise of
   * step i + offset, so that a run that continues another (`--init` of a checkpoint, which sets it to that
   * run's offset + steps unless given) sees new scenes instead of replaying the same indices.
   */
  readonly dataOffset?: number;
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
  /** Present only for ladder runs (same reason). */
  ladder?: { rung: number; contrast?: true; fixedTrack?: true };
  /** Present only when not 0 (same reason). */
  dataOffset?: number;
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
    ...(o.ladderRung !== undefined && {
      ladder: {
        rung: o.ladderRung,
        ...(o.contrast === true && { contrast: true as const }),
        ...(o.fixedTrack === true && { fixedTrack: true as const }),
      },
    }),
    ...(o.dataOffset !== undefined && o.dataOffset !== 0 && { dataOffset: o.dataOffset }),
  };
  if (
    r.ladder !== undefined &&
    !(Number.isInteger(r.ladder.rung) && r.ladder.rung >= 0 && r.ladder.rung <= 4)
  )
    throw new KinemaError('TRAIN_BAD_SETTINGS', `unet stage: ladderRung must be 0–4, got ${r.ladder.rung}`);
  if (o.contrast === true && r.ladder === undefined)
    throw new KinemaError('TRAIN_BAD_SETTINGS', 'unet stage: contrast needs ladderRung');
  if (r.dataOffset !== undefined && !(Number.isSafeInteger(r.dataOffset) && r.dataOffset > 0))
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `unet stage: dataOffset must be a non-negative integer, got ${r.dataOffset}`,
    );
  if (r.noiseShift !== undefined && !(r.noiseShift >= 1 && Number.isFinite(r.noiseShift)))
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `unet stage: noiseShift must be a number ≥ 1, got ${r.noiseShift}`,
    );
  if (r.terminalShare !== undefined && !(r.terminalShare > 0 && r.terminalShare < 1))
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `unet stage: terminalShare must be in [0, 1), got ${r.terminalShare}`,
    );
  if (r.timestepShift !== undefined && !(r.timestepShift > 0 && Number.isFinite(r.timestepShift)))
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `unet stage: timestepShift must be a positive number, got ${r.timestepShift}`,
    );
  if (r.trackCentring !== undefined) checkTrackCentring(r.trackCentring, 'unet stage');
  if (r.motionWeight !== undefined) {
    if (!(r.motionWeight > 0 && Number.isFinite(r.motionWeight)))
      throw new KinemaError(
        'TRAIN_BAD_SETTINGS',
        `unet stage: motionWeight must be a non-negative number, got ${r.motionWeight}`,
      );
    if (r.predictionType !== 'v_prediction')
      throw new KinemaError(
        'TRAIN_BAD_SETTINGS',
        'unet stage: motionWeight needs v_prediction (its weight is set on the x₀ error)',
      );
  }
  if (r.zeroTerminalSnr && r.predictionType === 'epsilon')
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      'unet stage: zeroTerminalSnr needs v_prediction (ε is undefined at zero SNR)',
    );
  if (r.textLrScale !== undefined) {
    if (!(r.textLrScale > 0 && Number.isFinite(r.textLrScale)))
      throw new KinemaError(
        'TRAIN_BAD_SETTINGS',
        `unet stage: textLrScale must be a positive number, got ${r.textLrScale}`,
      );
    if (!r.trainTextEncoder)
      throw new KinemaError(
        'TRAIN_BAD_SETTINGS',
        'unet stage: textLrScale needs the text encoder trained with the UNet (trainTextEncoder)',
      );
  }
  if (
    r.temporalTextLrScale !== undefined &&
    !(r.temporalTextLrScale > 0 && Number.isFinite(r.temporalTextLrScale))
  )
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `unet stage: temporalTextLrScale must be a positive number, got ${r.temporalTextLrScale}`,
    );
  if (r.textProbe) {
    if (!(r.textProbe.weight > 0 && Number.isFinite(r.textProbe.weight)))
      throw new KinemaError(
        'TRAIN_BAD_SETTINGS',
        `unet stage: textProbe must be a positive weight, got ${r.textProbe.weight}`,
      );
    if (!r.trainTextEncoder)
      throw new KinemaError(
        'TRAIN_BAD_SETTINGS',
        'unet stage: a text probe needs the text encoder trained with the UNet (trainTextEncoder)',
      );
    if (!Number.isInteger(r.textProbe.captions) || r.textProbe.captions < 1)
      throw new KinemaError(
        'TRAIN_BAD_SETTINGS',
        `unet stage: probeCaptions must be a positive integer, got ${r.textProbe.captions}`,
      );
  }
  if (!TRAIN_PREDICTIONS.includes(r.predictionType))
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `unet stage: predictionType must be 'epsilon' or 'v_prediction', got ${String(r.predictionType)}`,
    );
  for (const k of ['batchSize', 'frames', 'width', 'height', 'fps'] as const) {
    if (!Number.isInteger(r[k]) || r[k] < 1)
      throw new KinemaError('TRAIN_BAD_SETTINGS', `unet stage: ${k} must be a positive integer, got ${r[k]}`);
  }
  if (!Number.isInteger(r.images) || r.images < 0)
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `unet stage: images must be a non-negative integer, got ${r.images}`,
    );
  if (!(r.captionDropout >= 0 && r.captionDropout <= 1))
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `unet stage: captionDropout must be in [0, 1], got ${r.captionDropout}`,
    );
  if (!Number.isSafeInteger(r.seed) || r.seed < 0 || r.seed >= 2 ** 31)
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `unet stage: seed must be an integer in [0, 2^31), got ${r.seed}`,
    );
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
