// diffusers' AutoencoderKL (v0.35.2) on Kinema's engine: the encoder gives a diagonal Gaussian posterior
// (mean, logvar clamped to [-30, 20], std = exp(logvar / 2)), the decoder maps latents back to images.
// `encoderForward`/`decoderForward` are the traced model functions (for training, differentiable);
// `encode`/`decode` run them with the loaded weights, one compiled program per input shape.
// Latents passed to `decode` are the raw VAE latents: callers divide by `scaling_factor` first.
import type { Shape } from '../../engine/ir.js';
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import type { ExecutionProvider, HostTensor } from '../../engine/runtime.js';
import { hostTensor } from '../../engine/runtime.js';
import { Module, StateDictError } from '../../nn/module.js';
import type { StateDict } from '../../nn/module.js';
import { Conv2d, ConvNd } from '../../nn/layers.js';
import { compileWithWeights } from '../../nn/compile.js';
import type { CompiledFunction } from '../../nn/compile.js';
import { loadStateDict, readConfig } from '../../io/model_folder.js';
import type { FileLoader } from '../../io/loader.js';
import { parseVaeConfig, vaeScaleFactor } from './config.js';
import type { VaeConfig } from './config.js';
import { Encoder } from './encoder.js';
import { Decoder } from './decoder.js';
import { KinemaError } from '../../errors.js';

export interface Posterior<T> {
  readonly mean: T;
  readonly logvar: T;
  readonly std: T;
}

export interface VaeRuntimeOptions {
  /** ONNX Runtime execution provider (default 'cpu'). */
  readonly ep?: ExecutionProvider;
  /** Intra-op threads (0 = ONNX Runtime's default). */
  readonly threads?: number;
}

export interface DecodeOptions {
  /** Frames decoded per program run (default 8; with a temporal decoder, one video). */
  readonly batchSize?: number;
  /** Frames per video, folded into the batch (frame index fastest); only the temporal decoder uses it. */
  readonly numFrames?: number;
}

const DEFAULT_DECODE_BATCH = 8;

export class AutoencoderKL extends Module {
  readonly config: VaeConfig;
  readonly scaleFactor: number;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  private readonly quantConv: ConvNd | null;
  private readonly postQuantConv: ConvNd | null;
  private weights: StateDict | null = null;
  private readonly programs = new Map<string, Promise<CompiledFunction>>();

  private constructor(
    config: VaeConfig,
    private readonly runtime: VaeRuntimeOptions,
  ) {
    super();
    this.config = config;
    this.scaleFactor = vaeScaleFactor(config);
    const z = config.latentChannels;
    this.encoder = this.child('encoder', new Encoder(config));
    this.decoder = this.child('decoder', new Decoder(config));
    this.quantConv = config.useQuantConv
      ? this.child('quant_conv', Conv2d(2 * z, 2 * z, { kernel: 1 }))
      : null;
    this.postQuantConv = config.usePostQuantConv
      ? this.child('post_quant_conv', Conv2d(z, z, { kernel: 1 }))
      : null;
  }

  /** A model from a config.json object, without weights (use `loadWeights(vae.initParameters(seed))`). */
  static fromConfig(config: Record<string, unknown>, runtime: VaeRuntimeOptions = {}): AutoencoderKL {
    return new AutoencoderKL(parseVaeConfig(config), runtime);
  }

  /** Loads `dir/config.json` and its safetensors weights (strictly: every key present, no extra, shapes equal). */
  static async fromPretrained(
    dir: string,
    opts: { variant?: 'fp16' | 'bf16' | null; loader?: FileLoader } & VaeRuntimeOptions = {},
  ): Promise<AutoencoderKL> {
    const { variant, loader, ...runtime } = opts;
    const vae = AutoencoderKL.fromConfig(readConfig(dir, loader), runtime);
    const loaded = loadStateDict(dir, {
      ...(variant !== undefined && { variant }),
      ...(loader && { loader }),
    });
    try {
      vae.loadWeights(loaded.stateDict, loaded.shapes);
    } catch (e) {
      if (e instanceof StateDictError) throw new StateDictError(`${dir}: ${e.message}`);
      throw e;
    }
    return vae;
  }

  /** Binds float32 weights by checkpoint key after a strict check against the model's declarations. */
  loadWeights(sd: StateDict, shapes?: ReadonlyMap<string, Shape>): void {
    this.validateStateDict(sd, shapes ? { shapes } : {});
    this.weights = sd;
    this.programs.clear();
  }

  /** The bound weights (throws if none were loaded). */
  get stateDict(): StateDict {
    if (!this.weights) {
      throw new KinemaError(
        'VAE_BAD_INPUT',
        'AutoencoderKL has no weights: use fromPretrained, or loadWeights(vae.initParameters(seed))',
      );
    }
    return this.weights;
  }

  /** Traced encoder: images [N, C, H, W] in [-1, 1] → the latent posterior, each [N, latent_channels, H/f, W/f]. */
  encoderForward(images: Tensor): Posterior<Tensor> {
    let moments = this.encoder.forward(images);
    if (this.quantConv) moments = this.quantConv.forward(moments);
    const [mean, rawLogvar] = op.chunk(moments, 2, 1) as [Tensor, Tensor];
    const logvar = op.minimum(op.maximum(rawLogvar, -30), 20);
    return { mean, logvar, std: op.exp(op.mul(logvar, 0.5)) };
  }

  /** Traced decoder: latents [B·F, latent_channels, h, w] (not scaled) → images [B·F, out_channels, h·f, w·f]. */
  decoderForward(latents: Tensor, opts: { numFrames?: number } = {}): Tensor {
    const z = this.postQuantConv ? this.postQuantConv.forward(latents) : latents;
    return this.decoder.forward(z, opts.numFrames ?? 1);
  }

  /** Runs the encoder: images float32 [N, in_channels, H, W] with H, W divisible by `scaleFactor`. */
  async encode(images: HostTensor): Promise<Posterior<HostTensor>> {
    this.checkInput('encode', 'images', images, this.config.inChannels, this.scaleFactor);
    const fn = await this.program(`encode:${images.shape.join('x')}`, () =>
      compileWithWeights(
        (x) => ({ ...this.encoderForward(x) }),
        [{ name: 'images', shape: images.shape }],
        this.stateDict,
        this.runtime,
      ),
    );
    const out = await fn.exe.run({ images });
    return { mean: out['mean']!, logvar: out['logvar']!, std: out['std']! };
  }

  /** Runs the decoder on latents float32 [N, latent_channels, h, w], `batchSize` frames at a time. */
  async decode(latents: HostTensor, opts: DecodeOptions = {}): Promise<HostTensor> {
    this.checkInput('decode', 'latents', latents, this.config.latentChannels, 1);
    const [n, c, h, w] = latents.shape as [number, number, number, number];
    const numFrames = this.config.temporalDecoder ? (opts.numFrames ?? 1) : 1;
    const batch = this.decodeBatch(n, numFrames, opts.batchSize);
    const perIn = c * h * w;
    const outShape = [n, this.config.outChannels, h * this.scaleFactor, w * this.scaleFactor];
    const perOut = outShape[1]! * outShape[2]! * outShape[3]!;
    const result = new Float32Array(n * perOut);
    const data = latents.data as Float32Array;
    for (let start = 0; start < n; start += batch) {
      const count = Math.min(batch, n - start);
      const shape = [count, c, h, w];
      const fn = await this.program(`decode:${shape.join('x')}:${numFrames}`, () =>
        compileWithWeights(
          (z) => this.decoderForward(z, { numFrames }),
          [{ name: 'latents', shape }],
          this.stateDict,
          this.runtime,
        ),
      );
      const chunk = hostTensor(data.slice(start * perIn, (start + count) * perIn), shape);
      const out = await fn.exe.run({ latents: chunk });
      result.set(out['out0']!.data as Float32Array, start * perOut);
    }
    return hostTensor(result, outShape);
  }

  private decodeBatch(n: number, numFrames: number, batchSize: number | undefined): number {
    if (batchSize !== undefined && !(Number.isInteger(batchSize) && batchSize > 0)) {
      throw new KinemaError(
        'VAE_BAD_INPUT',
        `AutoencoderKL.decode: batchSize must be a positive integer, got ${batchSize}`,
      );
    }
    if (!Number.isInteger(numFrames) || numFrames < 1) {
      throw new KinemaError(
        'VAE_BAD_INPUT',
        `AutoencoderKL.decode: numFrames must be a positive integer, got ${numFrames}`,
      );
    }
    if (n % numFrames !== 0) {
      throw new KinemaError(
        'VAE_BAD_INPUT',
        `AutoencoderKL.decode: ${n} latents are not a whole number of ${numFrames}-frame videos`,
      );
    }
    if (numFrames > 1 && batchSize !== undefined && batchSize % numFrames !== 0) {
      throw new KinemaError(
        'VAE_BAD_INPUT',
        `AutoencoderKL.decode: batchSize ${batchSize} must be a multiple of numFrames ${numFrames} ` +
          '(the temporal decoder mixes the frames of a video)',
      );
    }
    return Math.min(n, batchSize ?? (numFrames > 1 ? numFrames : DEFAULT_DECODE_BATCH));
  }

  private checkInput(what: string, name: string, t: HostTensor, channels: number, factor: number): void {
    if (t.dtype !== 'float32' || !(t.data instanceof Float32Array)) {
      throw new KinemaError(
        'VAE_BAD_INPUT',
        `AutoencoderKL.${what}: ${name} must be float32, got ${t.dtype}`,
      );
    }
    if (t.shape.length !== 4 || t.shape[1] !== channels) {
      throw new KinemaError(
        'VAE_BAD_INPUT',
        `AutoencoderKL.${what}: ${name} must have shape [N, ${channels}, H, W], got [${t.shape}]`,
      );
    }
    const [, , h, w] = t.shape as [number, number, number, number];
    if (h % factor !== 0 || w % factor !== 0) {
      throw new KinemaError(
        'VAE_BAD_INPUT',
        `AutoencoderKL.${what}: ${name} size ${h}×${w} is not divisible by the VAE scale factor ${factor}`,
      );
    }
  }

  private program(key: string, make: () => Promise<CompiledFunction>): Promise<CompiledFunction> {
    let p = this.programs.get(key);
    if (!p) {
      p = make();
      this.programs.set(key, p);
      p.catch(() => this.programs.delete(key));
    }
    return p;
  }
}
