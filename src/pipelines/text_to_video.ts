// Text-to-video (diffusers' TextToVideoSDPipeline / VideoCrafter1 T2V): tokenize → CLIP text encoder →
// (uncond, cond) embeddings → scheduler loop with classifier-free guidance (the guidance pair and the
// combination eps_u + s·(eps_c − eps_u) run as ONE compiled program) → VAE decode in frame batches → RGB frames.
// The denoising loop is an async generator: the CLI draws a progress bar from it, a server could stream it.
import type { Tensor } from '../engine/tensor.js';
import * as op from '../engine/ops.js';
import { hostTensor } from '../engine/runtime.js';
import type { ExecutionProvider, HostTensor } from '../engine/runtime.js';
import { Generator } from '../engine/random.js';
import { compileWithWeights } from '../nn/compile.js';
import type { CompiledFunction } from '../nn/compile.js';
import { CLIPTokenizer } from '../models/clip/tokenizer.js';
import { CLIPTextModel } from '../models/clip/text_model.js';
import { UNet3DConditionModel } from '../models/unet3d/unet3d.js';
import type { LvdmUNet } from '../models/lvdm/unet.js';
import { AutoencoderKL } from '../models/vae/autoencoder_kl.js';
import { loadScheduler, mixFrameNoise } from '../schedulers/index.js';
import type { Scheduler, SchedulerName } from '../schedulers/index.js';
import { ModelLoadError, readModelIndex } from '../io/model_folder.js';
import { checkModelIndex } from './model_index.js';
import { joinPath as join, resolveLoader } from '../io/loader.js';
import type { FileLoader } from '../io/loader.js';
import { KinemaError } from '../errors.js';

export interface TextToVideoOptions {
  prompt: string;
  negativePrompt?: string;
  numFrames?: number;
  height?: number;
  width?: number;
  numInferenceSteps?: number;
  guidanceScale?: number;
  /**
   * Guidance rescale φ in [0, 1] (Lin et al. 2024, §3.4; diffusers' `guidance_rescale`): the guided prediction
   * is scaled to the standard deviation of the text-conditioned one and mixed back with weight φ, against the
   * over-saturated colours of high guidance, notably with zero-terminal-SNR models. Default 0 (off).
   */
  guidanceRescale?: number;
  seed?: number;
  /** Initial latents [1, C, frames, h, w] (overrides seed/frames/size). */
  latents?: HostTensor;
  /** Frames per second, for UNets with FPS conditioning (VideoCrafter1). */
  fps?: number;
  /** Frames decoded per VAE run. */
  decodeBatchSize?: number;
  /**
   * DDIM's η (Song et al. 2021, eq. 16): 0 (default) is the deterministic sampler, 1 adds DDPM's ancestral
   * noise at every step, drawn from the seed's stream after the starting latents.
   */
  eta?: number;
}

export type PipelineEvent =
  | { kind: 'encoded'; promptEmbeds: HostTensor; negativePromptEmbeds: HostTensor }
  | { kind: 'step'; index: number; total: number; timestep: number; latents: HostTensor }
  | { kind: 'decoded'; video: HostTensor /* [1, 3, F, H, W] in [-1, 1] */ }
  | {
      kind: 'done';
      frames: Uint8Array[];
      width: number;
      height: number;
      framesFloat: Float32Array; /* [F, H, W, 3] in [0, 1] */
    };

/** The denoisers the pipeline runs: diffusers' UNet3D, or VideoCrafter's LVDM UNet loaded from a .ckpt. */
export type VideoUNet = UNet3DConditionModel | LvdmUNet;

export interface PipelineComponents<U extends VideoUNet = UNet3DConditionModel> {
  tokenizer: CLIPTokenizer;
  textEncoder: CLIPTextModel;
  unet: U;
  vae: AutoencoderKL;
  scheduler: Scheduler;
}

const UNET_FOLDERS = ['unet', 'unet3d'];

/**
 * Another denoiser for `generate`'s loop (StreamingT2V's base + CAM + APM): a compiled guided program with the
 * pipeline's inputs (latents, timestep, context [2, S, D], guidance, and fps when the UNet has it) that returns
 * the guided prediction, plus the extra inputs it takes, fed unchanged at every step.
 */
export interface GuidedDenoiser {
  program(
    latentShape: readonly number[],
    ctxShape: readonly number[],
    withFps: boolean,
  ): Promise<CompiledFunction>;
  readonly feeds: Readonly<Record<string, HostTensor>>;
}

export class TextToVideoPipeline<U extends VideoUNet = UNet3DConditionModel> {
  private readonly guided = new Map<string, Promise<CompiledFunction>>();
  constructor(
    readonly components: PipelineComponents<U>,
    /** ONNX Runtime execution provider of the UNet program (the text encoder and VAE carry their own). */
    readonly ep: ExecutionProvider = 'cpu',
  ) {}

  /**
   * Loads a diffusers-layout folder (model_index.json, tokenizer/, text_encoder/, unet/, vae/, scheduler/),
   * from the file system or, with `loader`, from wherever that reads (a fetched folder in a browser).
   */
  static async fromPretrained(
    dir: string,
    opts: {
      scheduler?: SchedulerName;
      variant?: 'fp16' | 'bf16' | null;
      ep?: ExecutionProvider;
      loader?: FileLoader;
    } = {},
  ): Promise<TextToVideoPipeline> {
    const files = resolveLoader(opts.loader);
    if (files.kind(dir) === null) throw new ModelLoadError(`model folder ${dir} does not exist`);
    // a diffusers folder must have model_index.json, naming classes Kinema implements
    checkModelIndex(readModelIndex(dir, files), join(dir, 'model_index.json'));
    const folder = (names: string[]): string => {
      const hit = names.find((n) => files.kind(join(dir, n)) !== null);
      if (!hit) throw new ModelLoadError(`${dir}: missing component folder ${names.join(' or ')}`);
      return join(dir, hit);
    };
    const variant = {
      ...(opts.variant !== undefined && { variant: opts.variant }),
      ...(opts.loader && { loader: opts.loader }),
    };
    const onEp = { ...variant, ...(opts.ep !== undefined && { ep: opts.ep }) };
    const [tokenizer, textEncoder, unet, vae, scheduler] = await Promise.all([
      CLIPTokenizer.fromPretrained(folder(['tokenizer']), opts.loader ? { loader: opts.loader } : {}),
      CLIPTextModel.fromPretrained(folder(['text_encoder']), onEp),
      UNet3DConditionModel.fromPretrained(folder(UNET_FOLDERS), variant),
      AutoencoderKL.fromPretrained(folder(['vae']), onEp),
      loadScheduler(folder(['scheduler']), opts.scheduler, opts.loader),
    ]);
    return new TextToVideoPipeline({ tokenizer, textEncoder, unet, vae, scheduler }, opts.ep ?? 'cpu');
  }

  /** Drops compiled programs (after the components' weights or modules changed, e.g. a loaded LoRA). */
  clearCompiled(): void {
    this.guided.clear();
  }

  /** CLIP embeddings [1, 77, D] of a prompt (no attention mask, as the SD pipelines call the encoder). */
  async encodePrompt(text: string): Promise<HostTensor> {
    const { inputIds } = this.components.tokenizer.encode(text);
    return (await this.components.textEncoder.encode([inputIds])).lastHiddenState;
  }

  private guidedProgram(
    latentShape: readonly number[],
    ctxShape: readonly number[],
    withFps: boolean,
    withCond = false,
  ): Promise<CompiledFunction> {
    const key = `${latentShape.join(',')}|${ctxShape.join(',')}|${withFps}|${withCond}`;
    let hit = this.guided.get(key);
    if (!hit) {
      const unet = this.components.unet;
      const fn = (x: Tensor, t: Tensor, ctx: Tensor, scale: Tensor, fps?: Tensor): Tensor | Tensor[] => {
        const pair = op.concat([x, x], 0);
        const eps = unet.forward(pair, t, ctx, fps ? { fps } : {});
        const [u, c] = op.chunk(eps, 2, 0) as [Tensor, Tensor];
        const guided = op.add(u, op.mul(op.sub(c, u), scale));
        return withCond ? [guided, c] : guided;
      };
      const specs = [
        { name: 'latents', shape: latentShape },
        { name: 'timestep', shape: [1] },
        { name: 'context', shape: [2, ...ctxShape.slice(1)] },
        { name: 'guidance', shape: [] },
        ...(withFps ? [{ name: 'fps', shape: [1] }] : []),
      ];
      hit = compileWithWeights(fn, specs, unet.stateDict, { ep: this.ep });
      this.guided.set(key, hit);
    }
    return hit;
  }

  /**
   * The starting latents [1, C, frames, h, w]: `o.latents` when given, else seeded N(0, 1) noise × the
   * scheduler's init_noise_sigma, frame-correlated when the UNet was trained so (config `frame_noise_shared`).
   */
  prepareLatents(o: TextToVideoOptions, gen: Generator = new Generator(o.seed ?? 0)): HostTensor {
    if (o.latents) {
      if (o.latents.shape.length !== 5 || o.latents.shape[0] !== 1)
        throw new KinemaError(
          'PIPELINE_BAD_INPUT',
          `latents must have shape [1, C, frames, h, w], got [${o.latents.shape}]`,
        );
      return o.latents;
    }
    const { unet, vae, scheduler } = this.components;
    const f = vae.scaleFactor;
    const height = o.height ?? 256;
    const width = o.width ?? 256;
    if (height % f !== 0 || width % f !== 0)
      throw new KinemaError(
        'GENERATE_BAD_SIZE',
        `height and width must be divisible by the VAE factor ${f}, got ${height}×${width}`,
      );
    const shape = [1, unet.config.inChannels, o.numFrames ?? 16, height / f, width / f];
    const noise = gen.normal(shape.reduce((a, b) => a * b, 1));
    // A UNet trained on frame-correlated noise (config frame_noise_shared) starts from the same kind of noise.
    const rho = 'frameNoiseShared' in unet.config ? unet.config.frameNoiseShared : 0;
    if (rho > 0) mixFrameNoise(noise, gen.normal(shape[1]! * shape[3]! * shape[4]!), shape, rho);
    if (scheduler.initNoiseSigma !== 1)
      for (let i = 0; i < noise.length; i++) noise[i]! *= scheduler.initNoiseSigma;
    return hostTensor(noise, shape);
  }

  /**
   * Runs the pipeline, yielding progress events; the last event holds the frames. `denoiser` replaces the
   * UNet's guided program (the scheduler loop, seeding and decoding stay the same).
   */
  async *generate(o: TextToVideoOptions, denoiser?: GuidedDenoiser): AsyncGenerator<PipelineEvent> {
    const { unet, scheduler } = this.components;
    const promptEmbeds = await this.encodePrompt(o.prompt);
    const negativePromptEmbeds = await this.encodePrompt(o.negativePrompt ?? '');
    yield { kind: 'encoded', promptEmbeds, negativePromptEmbeds };
    // One seeded stream, as diffusers' `generator`: the starting noise, then the noise of stochastic steps (η > 0).
    const gen = new Generator(o.seed ?? 0);
    let latents = this.prepareLatents(o, gen);
    const ctx = concatBatch(negativePromptEmbeds, promptEmbeds);
    const withFps = unet.config.fpsCond === true;
    const rescale = o.guidanceRescale ?? 0;
    if (!(rescale >= 0 && rescale <= 1))
      throw new KinemaError(
        'GENERATE_BAD_OPTION',
        `guidanceRescale must be in [0, 1], got ${String(o.guidanceRescale)}`,
      );
    if (denoiser && rescale > 0)
      throw new KinemaError('GENERATE_BAD_OPTION', 'guidanceRescale is not available with this denoiser');
    const guided = denoiser
      ? await denoiser.program(latents.shape, ctx.shape, withFps)
      : await this.guidedProgram(latents.shape, ctx.shape, withFps, rescale > 0);
    scheduler.setTimesteps(o.numInferenceSteps ?? 25);
    const guidance = hostTensor(Float32Array.of(o.guidanceScale ?? 9.0), []);
    const total = scheduler.timesteps.length;
    for (const [index, t] of scheduler.timesteps.entries()) {
      const x = scheduler.scaleModelInput(latents.data as Float32Array, t);
      const feeds: Record<string, HostTensor> = {
        latents: hostTensor(x, latents.shape),
        timestep: hostTensor(Float32Array.of(t), [1]),
        context: ctx,
        guidance,
        ...denoiser?.feeds,
      };
      if (withFps) feeds['fps'] = hostTensor(Float32Array.of(o.fps ?? 8), [1]);
      const out = await guided.exe.run(feeds);
      const eps = out['out0']!.data as Float32Array;
      if (rescale > 0) rescaleGuidance(eps, out['out1']!.data as Float32Array, rescale);
      const next = scheduler.step(eps, t, latents.data as Float32Array, {
        eta: o.eta ?? 0,
        generator: gen,
      });
      latents = hostTensor(next.prevSample, latents.shape);
      // The next step starts from this event's latents: a consumer may edit them in place before it resumes the
      // generator (the long-video core steers overlap frames this way, src/pipelines/long_video/chunked.ts).
      yield { kind: 'step', index, total, timestep: t, latents };
    }
    const video = await this.decodeLatents(latents, o.decodeBatchSize);
    yield { kind: 'decoded', video };
    yield { kind: 'done', ...postprocess(video) };
  }

  /**
   * frames [F, 3, H, W] in [-1, 1] → latents [1, C, F, h, w]: the VAE's posterior means × its scaling factor,
   * the layout the UNet denoises (the inverse of `decodeLatents`).
   */
  async encodeVideo(frames: HostTensor): Promise<HostTensor> {
    const { vae } = this.components;
    if (frames.shape.length !== 4 || frames.shape[1] !== 3)
      throw new KinemaError(
        'PIPELINE_BAD_INPUT',
        `encodeVideo: frames must have shape [F, 3, H, W], got [${frames.shape}]`,
      );
    const { mean } = await vae.encode(frames);
    const [f, c, h, w] = mean.shape as [number, number, number, number];
    const src = mean.data as Float32Array;
    const out = new Float32Array(src.length);
    const scale = vae.config.scalingFactor;
    for (let fi = 0; fi < f; fi++)
      for (let ci = 0; ci < c; ci++) {
        const from = (fi * c + ci) * h * w;
        const to = (ci * f + fi) * h * w;
        for (let k = 0; k < h * w; k++) out[to + k] = src[from + k]! * scale;
      }
    return hostTensor(out, [1, c, f, h, w]);
  }

  /** latents [1, C, F, h, w] → video [1, 3, F, H, W] in [-1, 1] (divided by the VAE scaling factor first). */
  async decodeLatents(latents: HostTensor, batchSize?: number): Promise<HostTensor> {
    const { vae } = this.components;
    const [b, c, f, h, w] = latents.shape as [number, number, number, number, number];
    const src = latents.data as Float32Array;
    const folded = new Float32Array(src.length);
    const inv = 1 / vae.config.scalingFactor;
    for (let bi = 0; bi < b; bi++)
      for (let ci = 0; ci < c; ci++)
        for (let fi = 0; fi < f; fi++) {
          const from = ((bi * c + ci) * f + fi) * h * w;
          const to = ((bi * f + fi) * c + ci) * h * w;
          for (let k = 0; k < h * w; k++) folded[to + k] = src[from + k]! * inv;
        }
    const decoded = await vae.decode(hostTensor(folded, [b * f, c, h, w]), {
      ...(batchSize ? { batchSize } : {}),
      numFrames: f,
    });
    const [, oc, H, W] = decoded.shape as [number, number, number, number];
    const d = decoded.data as Float32Array;
    const out = new Float32Array(d.length);
    for (let bi = 0; bi < b; bi++)
      for (let fi = 0; fi < f; fi++)
        for (let ci = 0; ci < oc; ci++) {
          const from = ((bi * f + fi) * oc + ci) * H * W;
          const to = ((bi * oc + ci) * f + fi) * H * W;
          out.set(d.subarray(from, from + H * W), to);
        }
    return hostTensor(out, [b, oc, f, H, W]);
  }
}

/** Two host tensors stacked along the batch axis (the (uncond, cond) pair of guidance). */
export function concatBatch(a: HostTensor, b: HostTensor): HostTensor {
  const out = new Float32Array(a.data.length + b.data.length);
  out.set(a.data as Float32Array, 0);
  out.set(b.data as Float32Array, a.data.length);
  return hostTensor(out, [a.shape[0]! + b.shape[0]!, ...a.shape.slice(1)]);
}

/** video [1, 3, F, H, W] in [-1, 1] → per-frame RGB24 and float frames [F, H, W, 3] in [0, 1]. */
export function postprocess(video: HostTensor): {
  frames: Uint8Array[];
  framesFloat: Float32Array;
  width: number;
  height: number;
} {
  const [, c, f, H, W] = video.shape as [number, number, number, number, number];
  const v = video.data as Float32Array;
  const framesFloat = new Float32Array(f * H * W * 3);
  const frames: Uint8Array[] = [];
  for (let fi = 0; fi < f; fi++) {
    const rgb = new Uint8Array(H * W * 3);
    for (let ci = 0; ci < 3; ci++) {
      const plane = ((ci % c) * f + fi) * H * W;
      for (let k = 0; k < H * W; k++) {
        const x = Math.min(Math.max(v[plane + k]! / 2 + 0.5, 0), 1);
        framesFloat[(fi * H * W + k) * 3 + ci] = x;
        rgb[k * 3 + ci] = Math.round(x * 255);
      }
    }
    frames.push(rgb);
  }
  return { frames, framesFloat, width: W, height: H };
}

/**
 * Guidance rescale in place: guided ← φ·guided·(σ_cond/σ_guided) + (1 − φ)·guided, σ the standard deviation
 * over all elements (one sample), as diffusers' `rescale_noise_cfg`.
 */
export function rescaleGuidance(guided: Float32Array, cond: Float32Array, phi: number): Float32Array {
  const std = (x: Float32Array): number => {
    let m = 0;
    for (const v of x) m += v;
    m /= x.length;
    let q = 0;
    for (const v of x) q += (v - m) ** 2;
    return Math.sqrt(q / (x.length - 1));
  };
  const sg = std(guided);
  if (!(sg > 0)) return guided;
  const k = phi * (std(cond) / sg) + (1 - phi);
  for (let i = 0; i < guided.length; i++) guided[i]! *= k;
  return guided;
}
