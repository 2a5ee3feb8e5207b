// Image-to-video on a text-to-video pipeline folder with an `image_adapter/` (VideoCrafter1's method on the
// default model, src/models/i2v/image_adapter.ts) and its `image_encoder/`: the image's CLIP tokens condition
// every spatial cross-attention through the adapter; guidance's unconditional row has the negative prompt and
// the tokens of an all-zero image (mid-grey), as the release. Optionally (`firstFrame: 'replace'`) the first
// frame's latents are the image's own VAE latents, noised to the current level after every step — a training-
// free first-frame latent conditioning (the "replacement" of Ho et al. 2022) measured against the adapter alone.
import { hostTensor } from '../engine/runtime.js';
import type { HostTensor } from '../engine/runtime.js';
import { Generator } from '../engine/random.js';
import type { CompiledFunction } from '../nn/compile.js';
import type { StateDict } from '../nn/module.js';
import { StateDictError } from '../nn/module.js';
import type { UNet3DConditionModel } from '../models/unet3d/unet3d.js';
import { ImageAdapter, parseImageAdapterConfig } from '../models/i2v/image_adapter.js';
import { ClipImageEncoder } from '../models/clip/image_encoder.js';
import { loadStateDict, readConfig } from '../io/model_folder.js';
import { joinPath as join, resolveLoader } from '../io/loader.js';
import type { FileLoader } from '../io/loader.js';
import type {
  GuidedDenoiser,
  PipelineEvent,
  TextToVideoOptions,
  TextToVideoPipeline,
} from './text_to_video.js';
import { toFloatFrames } from './long_video/latent_frames.js';
import { adapterDenoiser, checkAdapterBase } from './adapter_folder.js';
import { KinemaError } from '../errors.js';

export type FirstFrameMode = 'none' | 'replace';

export interface ImageToVideoOptions extends TextToVideoOptions {
  /** The input image, RGB24 at the output size. */
  image: Uint8Array;
  /** Strength of the image attention (default 1, the release's image_cross_attention_scale). */
  imageScale?: number;
  /**
   * 'replace' (default): the first frame's latents follow the image's; 'none': the adapter alone (VideoCrafter1's
   * method, which on the default model does not keep the first frame: docs/videocrafter_i2v.md).
   */
  firstFrame?: FirstFrameMode;
}

/** True when a pipeline folder has an image-to-video adapter (image_adapter/config.json). */
export function hasImageAdapter(dir: string, loader?: FileLoader): boolean {
  return resolveLoader(loader).kind(join(dir, 'image_adapter', 'config.json')) === 'file';
}

export class ImageAdapterBundle {
  private readonly programs = new Map<string, Promise<CompiledFunction>>();
  private constructor(
    readonly adapter: ImageAdapter,
    readonly weights: StateDict,
    readonly encoder: ClipImageEncoder,
  ) {}

  /** Loads `dir/image_adapter` (strict, base fingerprint checked) and `dir/image_encoder` for `unet`. */
  static async load(
    dir: string,
    unet: UNet3DConditionModel,
    loader?: FileLoader,
  ): Promise<ImageAdapterBundle> {
    const files = resolveLoader(loader);
    const adir = join(dir, 'image_adapter');
    if (!hasImageAdapter(dir, loader) || files.kind(join(dir, 'image_encoder')) !== 'dir')
      throw new KinemaError(
        'I2V_NO_ADAPTER',
        `${dir} has no image-to-video adapter (image_adapter/ and image_encoder/): train one with ` +
          `kinema train i2v --base ${dir} --export ${dir}`,
      );
    const raw = readConfig(adir, loader);
    checkAdapterBase(dir, adir, raw['base_unet_sha256'], 'I2V_WRONG_BASE', loader);
    const adapter = new ImageAdapter(unet.config, parseImageAdapterConfig(raw, join(adir, 'config.json')));
    const own = loadStateDict(adir, loader ? { loader } : {});
    try {
      adapter.validateStateDict(own.stateDict, { shapes: own.shapes });
    } catch (e) {
      if (e instanceof StateDictError) throw new StateDictError(`${adir}: ${e.message}`);
      throw e;
    }
    const encoder = await ClipImageEncoder.fromFolder(join(dir, 'image_encoder'), loader);
    return new ImageAdapterBundle(adapter, new Map([...unet.stateDict, ...own.stateDict]), encoder);
  }

  /** A fresh (zero-initialised) adapter: the base model's behaviour exactly — tests and training starts. */
  static untrained(
    unet: UNet3DConditionModel,
    adapter: ImageAdapter,
    encoder: ClipImageEncoder,
    seed = 0,
  ): ImageAdapterBundle {
    return new ImageAdapterBundle(
      adapter,
      new Map([...unet.stateDict, ...adapter.initParameters(seed)]),
      encoder,
    );
  }

  private denoiser(pipe: TextToVideoPipeline, feeds: Record<string, HostTensor>): GuidedDenoiser {
    const unet = pipe.components.unet as UNet3DConditionModel;
    return adapterDenoiser(pipe, this.weights, this.programs, feeds, (pair, t, ctx, x, fps) =>
      unet.forward(pair, t, ctx, {
        ...(fps && { fps }),
        ...this.adapter.conditioning(unet, x['image_tokens']!, x['image_scale']!),
      }),
    );
  }

  /** Generates a video from `o.image` and the prompt; the events of `TextToVideoPipeline.generate`. */
  async *generate(pipe: TextToVideoPipeline, o: ImageToVideoOptions): AsyncGenerator<PipelineEvent> {
    const [w, h] = [o.width ?? 256, o.height ?? 256];
    if (o.image.length !== w * h * 3)
      throw new KinemaError(
        'I2V_BAD_IMAGE',
        `the image has ${o.image.length} bytes; a ${w}×${h} RGB image has ${w * h * 3}`,
      );
    const scale = o.imageScale ?? 1;
    if (!Number.isFinite(scale))
      throw new KinemaError('I2V_BAD_IMAGE', `image scale must be a number, got ${scale}`);
    const grey = new Uint8Array(w * h * 3).fill(128); // an all-zero image in [−1, 1]
    const t = await this.encoder.tokens([grey, o.image], w, h);
    const feeds = {
      image_tokens: hostTensor(t.data, [2, t.tokens, t.width]),
      image_scale: hostTensor(Float32Array.of(scale, scale), [2]),
    };
    const replace = (o.firstFrame ?? 'replace') === 'replace';
    const z = replace
      ? ((await pipe.encodeVideo(hostTensor(toFloatFrames([o.image], w, h), [1, 3, h, w])))
          .data as Float32Array)
      : null;
    const { scheduler } = pipe.components;
    const noise = replace ? new Generator((o.seed ?? 0) + 7919).normal(z!.length) : null;
    const steps = o.numInferenceSteps ?? 25;
    for await (const e of pipe.generate(o, this.denoiser(pipe, feeds))) {
      if (e.kind === 'step' && z && noise) {
        // frame 0 ← the image's latents at the next step's noise level (clean after the last step)
        const next = e.index + 1 < steps ? scheduler.timesteps[e.index + 1]! : null;
        const a = next === null ? 1 : scheduler.alphasCumprod[next]!;
        const [, c, f, hh, ww] = e.latents.shape as [number, number, number, number, number];
        const x = e.latents.data as Float32Array;
        const plane = hh * ww;
        for (let ci = 0; ci < c; ci++)
          for (let k = 0; k < plane; k++)
            x[ci * f * plane + k] =
              Math.sqrt(a) * z[ci * plane + k]! + Math.sqrt(1 - a) * noise[ci * plane + k]!;
      }
      yield e;
    }
  }
}
