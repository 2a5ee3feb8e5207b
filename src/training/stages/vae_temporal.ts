// `kinema train vae-temporal --base models/default`: VidRD's temporal decoder for an existing VAE. The base
// VAE gets the temporal conv layers after every ResnetBlock2D of its decoder's up blocks (config
// `temporal_decoder: true`; zero-initialised last conv, so the untrained decoder is the base decoder), and
// only those layers are trained; encoder, decoder and post-quant conv stay frozen (fed to the training program
// as fixed values, with no gradient). Data: clips of world videos (training split), encoded by the frozen
// encoder to posterior samples z = μ + σ·ε, plus per-frame independent jitter of the latents — the frame-to-
// frame incoherence a denoised video's latents have, which the image decoder turns into flicker and the
// temporal layers can learn to smooth. Loss: L1 + MSE of the frames plus λ · L1 of the frame differences
// (x̂_{t+1} − x̂_t against x_{t+1} − x_t), the part of the error a viewer sees as flicker.
// Export (`--export <pipeline>`): `<pipeline>/vae/` with the temporal decoder, fp16.
import { join } from 'node:path';
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { hostTensor } from '../../engine/runtime.js';
import type { HostTensor } from '../../engine/runtime.js';
import type { StateDict } from '../../nn/module.js';
import { ParameterSubset } from '../parameter_subset.js';
import { loadStateDict, readConfig } from '../../io/model_folder.js';
import { AutoencoderKL } from '../../models/vae/autoencoder_kl.js';
import { toFloatCHW, worldSample } from '../data/world.js';
import { GradStep } from '../trainer.js';
import { indexedGenerator, logLine, runTraining, writeRunReport } from './common.js';
import type { StageDefinition, StageOptions, StageResult } from './common.js';
import { exportVae, imageMse, psnrFromMse } from './vae.js';
import { KinemaError } from '../../errors.js';

export interface VaeTemporalSettings {
  /** Frames per training clip (default 8). */
  readonly frames?: number;
  /** Std of the per-frame latent jitter, in units of the latent std 1 / scaling_factor (default 0.15). */
  readonly jitter?: number;
  /** Weight λ of the frame-difference term (default 1). */
  readonly temporalWeight?: number;
  /** Held-out clips of 16 frames measured at the end (default 12). */
  readonly evalClips?: number;
}

const PURPOSE_TRAIN = 21;
const PURPOSE_EVAL = 22;
const isTemporal = (name: string): boolean => name.includes('.temp_convs.');

/** The base VAE of a pipeline folder and the same VAE with a fresh temporal decoder (weights bound). */
export function temporalVaeFromBase(base: string, seed = 0) {
  const dir = join(base, 'vae');
  const baseConfig = readConfig(dir);
  if (baseConfig['temporal_decoder'] === true)
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `--base ${base}: its VAE already has a temporal decoder; give the image VAE's folder`,
    );
  const config = { ...baseConfig, temporal_decoder: true };
  const plain = AutoencoderKL.fromConfig(baseConfig);
  const weights = loadStateDict(dir).stateDict;
  plain.loadWeights(weights);
  const temporal = AutoencoderKL.fromConfig(config);
  const sd = temporal.initParameters(seed);
  for (const [k, v] of weights) sd.set(k, v);
  temporal.loadWeights(sd);
  return { plain, temporal, config, frozen: weights };
}

/** World clips [n·T, 3, S, S] in [−1, 1]: samples `first … first + n − 1` of `split`, T frames each. */
export function worldClips(
  seed: number,
  split: 'train' | 'heldout',
  first: number,
  n: number,
  frames: number,
  size: number,
): Float32Array {
  const per = frames * 3 * size * size;
  const out = new Float32Array(n * per);
  for (let i = 0; i < n; i++) {
    const s = worldSample(seed, first + i, { width: size, height: size, frames, split });
    out.set(toFloatCHW(s.frames, size, size), i * per);
  }
  return out;
}

/** Posterior samples μ + σ·ε of `images` plus per-frame jitter of std `jitter` / scaling_factor. */
async function noisyLatents(
  vae: AutoencoderKL,
  images: HostTensor,
  rng: { normal(n: number): Float32Array },
  jitter: number,
  sample = true,
): Promise<HostTensor> {
  const post = await vae.encode(images);
  const mu = post.mean.data as Float32Array;
  const sd = post.std.data as Float32Array;
  const eps = rng.normal(mu.length);
  const jit = rng.normal(mu.length);
  const scale = jitter / vae.config.scalingFactor;
  const z = new Float32Array(mu.length);
  for (let i = 0; i < z.length; i++) z[i] = mu[i]! + (sample ? sd[i]! * eps[i]! : 0) + scale * jit[i]!;
  return hostTensor(z, post.mean.shape);
}

/** Mean |d̂ − d| of the frame differences of clips [n·T, …] (pixels in [−1, 1]). */
function temporalL1(x: Tensor, target: Tensor, frames: number): Tensor {
  const [bt, c, h, w] = x.shape as [number, number, number, number];
  const v = (t: Tensor) => op.reshape(t, [bt / frames, frames, c, h, w]);
  const diff = (t: Tensor) =>
    op.sub(op.slice(v(t), [1], [frames], [1]), op.slice(v(t), [0], [frames - 1], [1]));
  return op.mean(op.abs(op.sub(diff(x), diff(target))), [0, 1, 2, 3, 4]);
}

export function vaeTemporalLoss(
  vae: AutoencoderKL,
  latents: Tensor,
  images: Tensor,
  frames: number,
  weight: number,
): Record<string, Tensor> {
  const all = [0, 1, 2, 3];
  const x = vae.decoderForward(latents, { numFrames: frames });
  const d = op.sub(x, images);
  const l1 = op.mean(op.abs(d), all);
  const mse = op.mean(op.square(d), all);
  const temporal = temporalL1(x, images, frames);
  return { loss: op.add(op.add(l1, mse), op.mul(temporal, weight)), l1, mse, temporal };
}

export interface FlickerScores {
  /** Mean per-frame PSNR (dB) of the decoded clips against the world's frames. */
  readonly psnr: number;
  /** Mean |(x̂_{t+1} − x̂_t) − (x_{t+1} − x_t)| in [0, 1] pixel units: flicker the decoder adds. */
  readonly temporalError: number;
  /** Mean |x̂_{t+1} − x̂_t| in [0, 1] pixel units (the world's own: `referenceFrameDiff`). */
  readonly frameDiff: number;
}

/** PSNR, temporal error and frame difference of decoded clips [n·T, 3, H, W] against the originals. */
export function flickerScores(
  decoded: Float32Array,
  original: Float32Array,
  n: number,
  frames: number,
  size: number,
): FlickerScores & { referenceFrameDiff: number } {
  const per = 3 * size * size;
  const clamp = (v: number) => Math.min(1, Math.max(0, (v + 1) / 2));
  let psnr = 0;
  let te = 0;
  let fd = 0;
  let rfd = 0;
  for (let i = 0; i < n * frames; i++) {
    psnr += psnrFromMse(
      imageMse(original.subarray(i * per, (i + 1) * per), decoded.subarray(i * per, (i + 1) * per)),
    );
    if (i % frames === 0) continue;
    for (let k = 0; k < per; k++) {
      const a = (i - 1) * per + k;
      const b = i * per + k;
      const dx = clamp(decoded[b]!) - clamp(decoded[a]!);
      const dr = (original[b]! - original[a]!) / 2;
      te += Math.abs(dx - dr);
      fd += Math.abs(dx);
      rfd += Math.abs(dr);
    }
  }
  const pairs = n * (frames - 1) * per;
  return {
    psnr: psnr / (n * frames),
    temporalError: te / pairs,
    frameDiff: fd / pairs,
    referenceFrameDiff: rfd / pairs,
  };
}

/** Held-out world clips decoded by the base and the temporal decoder, from clean and jittered latents. */
export async function evaluateFlicker(
  plain: AutoencoderKL,
  temporal: AutoencoderKL,
  seed: number,
  clips: number,
  jitter: number,
) {
  const frames = 16;
  const size = plain.config.sampleSize as number;
  const images = worldClips(seed, 'heldout', 0, clips, frames, size);
  const out: Record<string, FlickerScores & { referenceFrameDiff: number }> = {};
  for (const [label, j] of [
    ['clean', 0],
    ['jittered', jitter],
  ] as const) {
    const rng = indexedGenerator(seed, PURPOSE_EVAL, j === 0 ? 0 : 1);
    const per = frames * 3 * size * size;
    const base: Float32Array[] = [];
    const temp: Float32Array[] = [];
    for (let c = 0; c < clips; c++) {
      const clip = hostTensor(images.slice(c * per, (c + 1) * per), [frames, 3, size, size]);
      const z = await noisyLatents(plain, clip, rng, j, false);
      base.push((await plain.decode(z)).data as Float32Array);
      temp.push((await temporal.decode(z, { numFrames: frames })).data as Float32Array);
    }
    const flat = (xs: Float32Array[]) => {
      const all = new Float32Array(xs.reduce((a, x) => a + x.length, 0));
      let at = 0;
      for (const x of xs) (all.set(x, at), (at += x.length));
      return all;
    };
    out[`${label}_base`] = flickerScores(flat(base), images, clips, frames, size);
    out[`${label}_temporal`] = flickerScores(flat(temp), images, clips, frames, size);
  }
  return out;
}

export function createVaeTemporalStage(settings: VaeTemporalSettings = {}): StageDefinition {
  return {
    name: 'vae-temporal',
    summary: "VidRD temporal decoder layers on a pipeline's VAE (--base), all else frozen, on world clips",
    defaults: { steps: 600, batch: 2, lr: 5e-4, checkpointEvery: 50 },
    run: (opts) => runVaeTemporal(settings, opts),
  };
}

export const vaeTemporalStage = createVaeTemporalStage();

async function runVaeTemporal(s: VaeTemporalSettings, opts: StageOptions): Promise<StageResult> {
  if (!opts.base)
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      'vae-temporal: give the pipeline whose VAE gets the temporal decoder: --base <dir>',
    );
  const frames = s.frames ?? 8;
  const jitter = s.jitter ?? 0.15;
  const weight = s.temporalWeight ?? 1;
  const threads = opts.threads === undefined ? {} : { threads: opts.threads };
  const { plain, temporal, config, frozen } = temporalVaeFromBase(opts.base, opts.seed);
  const size = plain.config.sampleSize as number;
  const l = size / plain.scaleFactor;
  const z = plain.config.latentChannels;
  const bt = opts.batch * frames;
  const trainable = [...temporal.namedParameters().keys()].filter(isTemporal);
  const step = await GradStep.create(
    (b) => vaeTemporalLoss(temporal, b['latents']!, b['images']!, frames, weight),
    [
      { name: 'latents', shape: [bt, z, l, l] },
      { name: 'images', shape: [bt, 3, size, size] },
    ],
    { ...threads, frozen, trainable },
  );
  const view = new ParameterSubset(temporal, isTemporal);
  logLine(
    opts,
    `vae-temporal: ${(view.parameterCount() / 1e3).toFixed(1)} k trainable parameters (frozen: ${(plain.parameterCount() / 1e6).toFixed(3)} M), batch ${opts.batch} × ${frames} frames of ${size}×${size}`,
  );
  const batch = async (i: number): Promise<Record<string, HostTensor>> => {
    const images = hostTensor(worldClips(opts.seed, 'train', i * opts.batch, opts.batch, frames, size), [
      bt,
      3,
      size,
      size,
    ]);
    return {
      images,
      latents: await noisyLatents(plain, images, indexedGenerator(opts.seed, PURPOSE_TRAIN, i), jitter),
    };
  };
  const fresh = new Map([...temporal.stateDict].filter(([k]) => isTemporal(k)));
  const outcome = await runTraining({
    opts,
    label: 'vae-temporal',
    model: view,
    step,
    batch,
    warmupSteps: Math.min(50, Math.floor(opts.steps / 10)),
    weightDecay: 0,
    clipNorm: 1,
    ema: { decay: 0.99, warmup: true },
    startWeights: () => fresh,
    extra: {
      stage: 'vae-temporal',
      vae_config: config,
      data: { batch: opts.batch, frames, jitter, temporal_weight: weight },
    },
  });
  const metrics: Record<string, unknown> = {
    trainable_parameters: view.parameterCount(),
    frames,
    jitter,
    temporal_weight: weight,
  };
  const exported: string[] = [];
  if (outcome.completed) {
    const full = new Map(frozen);
    for (const [k, v] of outcome.finalParams) full.set(k, v);
    temporal.loadWeights(full);
    const flicker = await evaluateFlicker(plain, temporal, opts.seed, s.evalClips ?? 12, jitter);
    metrics['heldout_flicker'] = flicker;
    for (const [k, v] of Object.entries(flicker))
      logLine(
        opts,
        `vae-temporal: held-out ${k}: PSNR ${v.psnr.toFixed(2)} dB, temporal error ${v.temporalError.toFixed(5)}, frame diff ${v.frameDiff.toFixed(5)} (world ${v.referenceFrameDiff.toFixed(5)})`,
      );
    if (opts.exportDir) exported.push(exportVae(opts.exportDir, config, full));
  }
  const full = await writeRunReport(
    opts,
    'temporal decoder loss (L1 + MSE + λ·frame-difference L1)',
    outcome.history,
    metrics,
  );
  return {
    completed: outcome.completed,
    step: outcome.result.endStep,
    losses: outcome.history.losses,
    metrics: full,
    exported,
  };
}
