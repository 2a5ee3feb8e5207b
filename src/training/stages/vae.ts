// `kinema train vae`: a small AutoencoderKL (64×64×3 frames → 16×16×4 latents) trained on world frames
// (a random frame of a world video, or an image-mode frame) with L1 + MSE reconstruction plus a small KL term
// (β ≈ 1e-6) on the reparameterised posterior sample, as latent-diffusion autoencoders are trained (without
// the perceptual and adversarial terms). After training, `scaling_factor` is set to 1 / std of posterior
// samples of training frames, so that scaled latents have unit variance, and PSNR is measured on held-out
// frames. Export: `<export>/vae/` (diffusers AutoencoderKL, fp16).
import { join } from 'node:path';
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { hostTensor, type HostTensor } from '../../engine/runtime.js';
import type { StateDict } from '../../nn/module.js';
import { AutoencoderKL } from '../../models/vae/autoencoder_kl.js';
import { toFloatCHW, worldSample } from '../data/world.js';
import { GradStep } from '../trainer.js';
import { exportComponent } from '../export.js';
import { indexedGenerator, logLine, runTraining, writeRunReport } from './common.js';
import type { StageDefinition, StageOptions, StageResult, TrainingOutcome } from './common.js';
import { KinemaError } from '../../errors.js';

/** diffusers AutoencoderKL config of the default VAE (scaling_factor is replaced by the measured value). */
export const DEFAULT_VAE_CONFIG: Readonly<Record<string, unknown>> = {
  _class_name: 'AutoencoderKL',
  _diffusers_version: '0.35.2',
  in_channels: 3,
  out_channels: 3,
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
  block_out_channels: [32, 64, 64],
  layers_per_block: 1,
  act_fn: 'silu',
  latent_channels: 4,
  norm_num_groups: 8,
  sample_size: 64,
  scaling_factor: 1,
  shift_factor: null,
  latents_mean: null,
  latents_std: null,
  force_upcast: false,
  use_quant_conv: true,
  use_post_quant_conv: true,
  mid_block_add_attention: false,
};

export interface VaeStageSettings {
  /** diffusers config (default DEFAULT_VAE_CONFIG); its sample_size is the training frame size. */
  readonly config?: Readonly<Record<string, unknown>>;
  /** KL weight β (default 1e-6). */
  readonly klWeight?: number;
  /** Frames of each world video a frame is drawn from (default 16, the world's nominal clip length). */
  readonly videoFrames?: number;
  /** Fraction of frames drawn in image mode (default 0.25). */
  readonly imageFraction?: number;
  /** Frames used to measure the latent std and the held-out PSNR (default 256 each). */
  readonly evalFrames?: number;
  readonly warmupSteps?: number;
}

const PURPOSE_TRAIN = 11;
const PURPOSE_EVAL = 12;

interface Resolved {
  readonly config: Record<string, unknown>;
  readonly size: number;
  readonly klWeight: number;
  readonly videoFrames: number;
  readonly imageFraction: number;
  readonly evalFrames: number;
  readonly warmupSteps: number;
}

function resolve(
  s: VaeStageSettings,
  steps: number,
  overrides: Readonly<Record<string, unknown>> = {},
): Resolved {
  const config = { ...(s.config ?? DEFAULT_VAE_CONFIG), ...overrides };
  const size = config['sample_size'];
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1) {
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `vae stage: the config's sample_size must be one integer (the frame size), got ${String(size)}`,
    );
  }
  return {
    config,
    size,
    klWeight: s.klWeight ?? 1e-6,
    videoFrames: s.videoFrames ?? 16,
    imageFraction: s.imageFraction ?? 0.25,
    evalFrames: s.evalFrames ?? 256,
    warmupSteps: s.warmupSteps ?? Math.min(100, Math.floor(steps / 10)),
  };
}

/**
 * World frames [count, 3, S, S] in [-1, 1]: sample `indices[i]` of `split`, in image mode when `imageMode[i]`,
 * else its frame `Math.floor(pick[i] · videoFrames)`.
 */
export function worldFrames(
  seed: number,
  split: 'train' | 'heldout',
  indices: readonly number[],
  imageMode: readonly boolean[],
  pick: ArrayLike<number>,
  r: Pick<Resolved, 'size' | 'videoFrames'>,
): Float32Array {
  const per = 3 * r.size * r.size;
  const out = new Float32Array(indices.length * per);
  indices.forEach((index, i) => {
    const image = imageMode[i] === true;
    const s = worldSample(seed, index, {
      width: r.size,
      height: r.size,
      frames: image ? 1 : r.videoFrames,
      split,
      imageMode: image,
    });
    const frame = s.frames[Math.min(s.frames.length - 1, Math.floor(pick[i]! * s.frames.length))]!;
    out.set(toFloatCHW([frame], r.size, r.size), i * per);
  });
  return out;
}

/** Frames and posterior noise of training step `step` (indices step·B …, choices from the step's RNG). */
function trainingBatch(
  opts: StageOptions,
  r: Resolved,
  vae: AutoencoderKL,
  step: number,
): Record<string, HostTensor> {
  const b = opts.batch;
  const rng = indexedGenerator(opts.seed, PURPOSE_TRAIN, step);
  const mode = rng.uniform(b);
  const pick = rng.uniform(b);
  const indices = Array.from({ length: b }, (_, i) => step * b + i);
  const images = worldFrames(
    opts.seed,
    'train',
    indices,
    Array.from(mode, (u) => u < r.imageFraction),
    pick,
    r,
  );
  const l = r.size / vae.scaleFactor;
  const z = vae.config.latentChannels;
  return {
    images: hostTensor(images, [b, 3, r.size, r.size]),
    noise: hostTensor(rng.normal(b * z * l * l), [b, z, l, l]),
  };
}

/**
 * The VAE training loss: mean |x − x̂| + mean (x − x̂)² + β · KL, with x̂ decoded from z = μ + σ·ε and
 * KL = ½ Σ (μ² + σ² − 1 − log σ²) summed over latent elements, averaged over the batch.
 */
export function vaeLoss(
  vae: AutoencoderKL,
  images: Tensor,
  noise: Tensor,
  klWeight: number,
): Record<string, Tensor> {
  const n = images.shape[0]!;
  const all = [0, 1, 2, 3];
  const post = vae.encoderForward(images);
  const z = op.add(post.mean, op.mul(post.std, noise));
  const diff = op.sub(vae.decoderForward(z), images);
  const l1 = op.mean(op.abs(diff), all);
  const mse = op.mean(op.square(diff), all);
  const klTerms = op.sub(op.add(op.square(post.mean), op.exp(post.logvar)), op.add(post.logvar, 1));
  const kl = op.div(op.mul(op.sum(klTerms, all), 0.5), n);
  return { loss: op.add(op.add(l1, mse), op.mul(kl, klWeight)), l1, mse, kl };
}

/** The training program of a batch size: loss (+ l1, mse, kl) and gradients. */
export function vaeGradStep(
  vae: AutoencoderKL,
  batch: number,
  klWeight: number,
  threads?: number,
): Promise<GradStep> {
  const size = vae.config.sampleSize as number;
  const l = size / vae.scaleFactor;
  return GradStep.create(
    (b) => vaeLoss(vae, b['images']!, b['noise']!, klWeight),
    [
      { name: 'images', shape: [batch, vae.config.inChannels, size, size] },
      { name: 'noise', shape: [batch, vae.config.latentChannels, l, l] },
    ],
    threads === undefined ? {} : { threads },
  );
}

export interface VaeEvaluation {
  /** 1 / std of posterior samples of training frames (diffusers' scaling_factor). */
  readonly scalingFactor: number;
  readonly latentMean: number;
  readonly latentStd: number;
  /** Mean per-frame PSNR (dB, pixels in [0, 1]) of posterior-mean reconstructions of held-out frames. */
  readonly heldoutPsnr: number;
  readonly heldoutMse: number;
  readonly frames: number;
}

/** Mean squared error of two images in [-1, 1], compared in [0, 1] with the reconstruction clamped. */
export function imageMse(reference: Float32Array, reconstruction: Float32Array): number {
  if (reference.length !== reconstruction.length || reference.length === 0) {
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `imageMse: sizes differ or are empty (${reference.length} vs ${reconstruction.length})`,
    );
  }
  let se = 0;
  for (let i = 0; i < reference.length; i++) {
    const a = (reference[i]! + 1) / 2;
    const b = Math.min(1, Math.max(0, (reconstruction[i]! + 1) / 2));
    se += (a - b) ** 2;
  }
  return se / reference.length;
}

/** PSNR in dB for pixel values in [0, 1] (peak 1). */
export function psnrFromMse(mse: number): number {
  return mse === 0 ? Infinity : 10 * Math.log10(1 / mse);
}

async function encodeAll(vae: AutoencoderKL, frames: Float32Array, n: number, size: number, chunk = 32) {
  const per = 3 * size * size;
  const means: HostTensor[] = [];
  const stds: HostTensor[] = [];
  for (let s = 0; s < n; s += chunk) {
    const c = Math.min(chunk, n - s);
    const post = await vae.encode(hostTensor(frames.slice(s * per, (s + c) * per), [c, 3, size, size]));
    means.push(post.mean);
    stds.push(post.std);
  }
  return { means, stds };
}

/** Mean and std of posterior samples z = μ + σ·ε of `n` training-split frames the training never used. */
async function latentStatistics(vae: AutoencoderKL, seed: number, r: Resolved, n: number) {
  const rng = indexedGenerator(seed, PURPOSE_EVAL, 1);
  const mode = Array.from(rng.uniform(n), (u) => u < r.imageFraction);
  const base = 1_000_000_000; // beyond any training step's sample indices
  const indices = Array.from({ length: n }, (_, i) => base + i);
  const post = await encodeAll(vae, worldFrames(seed, 'train', indices, mode, rng.uniform(n), r), n, r.size);
  let sum = 0;
  let sq = 0;
  let count = 0;
  post.means.forEach((m, k) => {
    const mu = m.data as Float32Array;
    const sd = post.stds[k]!.data as Float32Array;
    const eps = rng.normal(mu.length);
    for (let i = 0; i < mu.length; i++) {
      const z = mu[i]! + sd[i]! * eps[i]!;
      sum += z;
      sq += z * z;
      count++;
    }
  });
  const mean = sum / count;
  return { mean, std: Math.sqrt(Math.max(0, sq / count - mean * mean)) };
}

/** Mean per-frame PSNR and MSE of posterior-mean reconstructions of `n` held-out-split frames. */
async function heldoutReconstruction(vae: AutoencoderKL, seed: number, r: Resolved, n: number) {
  const rng = indexedGenerator(seed, PURPOSE_EVAL, 2);
  const mode = Array.from(rng.uniform(n), (u) => u < r.imageFraction);
  const indices = Array.from({ length: n }, (_, i) => i);
  const held = worldFrames(seed, 'heldout', indices, mode, rng.uniform(n), r);
  const posterior = await encodeAll(vae, held, n, r.size);
  const per = 3 * r.size * r.size;
  let psnrSum = 0;
  let mseSum = 0;
  let f = 0;
  for (const m of posterior.means) {
    const recon = (await vae.decode(m, { batchSize: m.shape[0]! })).data as Float32Array;
    for (let k = 0; k < m.shape[0]!; k++, f++) {
      const mse = imageMse(held.subarray(f * per, (f + 1) * per), recon.subarray(k * per, (k + 1) * per));
      psnrSum += psnrFromMse(mse);
      mseSum += mse;
    }
  }
  return { psnr: psnrSum / n, mse: mseSum / n };
}

/** Measures the latent scale on training frames and the reconstruction PSNR on held-out frames. */
export async function evaluateVae(vae: AutoencoderKL, seed: number, r: Resolved): Promise<VaeEvaluation> {
  const n = r.evalFrames;
  const latents = await latentStatistics(vae, seed, r, n);
  const recon = await heldoutReconstruction(vae, seed, r, n);
  return {
    scalingFactor: 1 / latents.std,
    latentMean: latents.mean,
    latentStd: latents.std,
    heldoutPsnr: recon.psnr,
    heldoutMse: recon.mse,
    frames: n,
  };
}

/** Writes `<pipelineDir>/vae` (config.json with the measured scaling_factor + fp16 weights). */
export function exportVae(pipelineDir: string, config: Record<string, unknown>, weights: StateDict): string {
  const dir = join(pipelineDir, 'vae');
  const module = AutoencoderKL.fromConfig(config);
  exportComponent(dir, { config, stateDict: weights, module, weightsBasename: 'diffusion_pytorch_model' });
  return dir;
}

/** The `kinema train vae` stage; `settings` override the model and data sizes (tests use tiny ones). */
export function createVaeStage(settings: VaeStageSettings = {}): StageDefinition {
  return {
    name: 'vae',
    summary: 'AutoencoderKL (64×64×3 → 16×16×4 by default) on world frames, L1 + MSE + KL',
    defaults: { steps: 1000, batch: 16, lr: 1e-3, checkpointEvery: 50 },
    run: (opts) => runVaeStage(settings, opts),
  };
}

export const vaeStage = createVaeStage();

async function runVaeStage(s: VaeStageSettings, opts: StageOptions): Promise<StageResult> {
  const r = resolve(s, opts.steps, opts.configOverrides);
  const vae = AutoencoderKL.fromConfig(r.config, opts.threads === undefined ? {} : { threads: opts.threads });
  if (r.size % vae.scaleFactor !== 0) {
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `vae stage: sample_size ${r.size} is not divisible by the scale factor ${vae.scaleFactor}`,
    );
  }
  const t0 = performance.now();
  const step = await vaeGradStep(vae, opts.batch, r.klWeight, opts.threads);
  logLine(
    opts,
    `vae: ${(vae.parameterCount() / 1e6).toFixed(3)} M parameters, batch ${opts.batch} × ${r.size}×${r.size}; ` +
      `program ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const outcome = await runTraining({
    opts,
    label: 'vae',
    model: vae,
    step,
    batch: (i) => trainingBatch(opts, r, vae, i),
    warmupSteps: r.warmupSteps,
    weightDecay: 0,
    clipNorm: 1,
    ema: { decay: 0.999, warmup: true },
    extra: {
      stage: 'vae',
      vae_config: r.config,
      data: { batch: opts.batch, frames: r.videoFrames, images: r.imageFraction, kl: r.klWeight },
    },
  });
  return finishVaeStage(opts, r, vae, outcome);
}

async function finishVaeStage(
  opts: StageOptions,
  r: Resolved,
  vae: AutoencoderKL,
  outcome: TrainingOutcome,
): Promise<StageResult> {
  const metrics: Record<string, unknown> = { parameters: vae.parameterCount(), kl_weight: r.klWeight };
  const exported: string[] = [];
  if (outcome.completed) {
    vae.loadWeights(outcome.finalParams);
    const ev = await evaluateVae(vae, opts.seed, r);
    const config = { ...r.config, scaling_factor: Number(ev.scalingFactor.toPrecision(6)) };
    Object.assign(metrics, {
      scaling_factor: config['scaling_factor'],
      latent_mean: ev.latentMean,
      latent_std: ev.latentStd,
      heldout_psnr_db: ev.heldoutPsnr,
      heldout_mse: ev.heldoutMse,
      eval_frames: ev.frames,
    });
    logLine(
      opts,
      `vae: held-out PSNR ${ev.heldoutPsnr.toFixed(2)} dB over ${ev.frames} frames; latent std ` +
        `${ev.latentStd.toFixed(4)} → scaling_factor ${config['scaling_factor']}`,
    );
    if (opts.exportDir) exported.push(exportVae(opts.exportDir, config, outcome.finalParams));
  }
  const full = await writeRunReport(opts, 'VAE loss (L1 + MSE + β·KL)', outcome.history, metrics);
  return {
    completed: outcome.completed,
    step: outcome.result.endStep,
    losses: outcome.history.losses,
    metrics: full,
    exported,
  };
}
