// StreamingT2V (Henschel et al. 2024) on the chunked long-video core: the first chunk is the base model's own
// video; every next chunk starts from fresh noise and is denoised by the base UNet with the CAM (conditioned on
// the last F_cond frames on screen) and the APM (conditioned on the anchor frame: the video's first frame, or
// an image the user gives). As in the release, a chunk's first F_cond frames regenerate the conditioning frames
// and are discarded (the core writes only the F − O new frames), so --overlap must equal the adapters' F_cond.
// Guidance: ε = ε(∅) + ω·(ε(text, frames, anchor) − ε(∅)); the unconditional row drops the text (negative
// prompt), the frames (the mergers' gate 0) and the anchor (the embedding of an all-zero image, the release's
// unconditional image) — 'all', the multi-condition guidance; 'text' keeps the frames in both rows
// (what the release's pipeline does).
//
// The adapters live next to a pipeline folder's components: streaming/ (config.json + weights, with the SHA-256
// of the base UNet's weights they were trained on) and image_encoder/ (a CLIPVisionModelWithProjection).
import * as op from '../engine/ops.js';
import { hostTensor } from '../engine/runtime.js';
import type { HostTensor } from '../engine/runtime.js';
import type { CompiledFunction } from '../nn/compile.js';
import type { StateDict } from '../nn/module.js';
import { StateDictError } from '../nn/module.js';
import { UNet3DConditionModel } from '../models/unet3d/unet3d.js';
import { StreamingAdapters, streamingForward } from '../models/streaming/streaming_unet.js';
import { parseStreamingConfig } from '../models/streaming/config.js';
import { ClipImageEncoder } from '../models/clip/image_encoder.js';
import { loadStateDict, readConfig } from '../io/model_folder.js';
import { joinPath as join, resolveLoader } from '../io/loader.js';
import type { FileLoader } from '../io/loader.js';
import type { GuidedDenoiser, TextToVideoPipeline } from './text_to_video.js';
import { adapterDenoiser, checkAdapterBase } from './adapter_folder.js';
import { toFloatFrames } from './long_video/latent_frames.js';
import type { ChunkContext, ChunkPlan, LongVideoMode } from './long_video/chunked.js';
import { KinemaError } from '../errors.js';

export type StreamingGuidance = 'all' | 'text';

export interface StreamingModeOptions {
  /** The APM's anchor (RGB24 at the video's size); default: the video's first frame. */
  anchor?: Uint8Array;
  /** What the unconditional row of guidance drops (default 'all'). */
  guidance?: StreamingGuidance;
  /** false: the APM's anchor is replaced by the unconditional image in both rows (the CAM-only ablation). */
  apm?: boolean;
}

/** True when a pipeline folder has StreamingT2V adapters (streaming/config.json). */
export function hasStreamingAdapters(dir: string, loader?: FileLoader): boolean {
  return resolveLoader(loader).kind(join(dir, 'streaming', 'config.json')) === 'file';
}

export class StreamingAdaptersBundle {
  private readonly programs = new Map<string, Promise<CompiledFunction>>();
  private constructor(
    readonly adapters: StreamingAdapters,
    readonly weights: StateDict,
    readonly anchorEncoder: ClipImageEncoder,
  ) {}

  /**
   * Loads `dir/streaming` and `dir/image_encoder` for `unet` (the UNet loaded from `dir/unet`, or any UNet whose
   * weights file has the fingerprint the adapters record). Named errors: STREAMING_NO_ADAPTERS,
   * STREAMING_WRONG_BASE, STATE_DICT_MISMATCH.
   */
  static async load(
    dir: string,
    unet: UNet3DConditionModel,
    loader?: FileLoader,
  ): Promise<StreamingAdaptersBundle> {
    const files = resolveLoader(loader);
    const sdir = join(dir, 'streaming');
    if (!hasStreamingAdapters(dir, loader) || files.kind(join(dir, 'image_encoder')) !== 'dir')
      throw new KinemaError(
        'STREAMING_NO_ADAPTERS',
        `${dir} has no StreamingT2V adapters (streaming/ and image_encoder/): train them with ` +
          `kinema train cam-apm --base ${dir} --export ${dir}, or use --long naive|vidrd`,
      );
    const raw = readConfig(sdir, loader);
    const config = parseStreamingConfig(raw, join(sdir, 'config.json'));
    checkAdapterBase(dir, sdir, raw['base_unet_sha256'], 'STREAMING_WRONG_BASE', loader);
    const adapters = new StreamingAdapters(unet.config, config);
    const own = loadStateDict(sdir, loader ? { loader } : {});
    try {
      adapters.validateStateDict(own.stateDict, { shapes: own.shapes });
    } catch (e) {
      if (e instanceof StateDictError) throw new StateDictError(`${sdir}: ${e.message}`);
      throw e;
    }
    const encoder = await ClipImageEncoder.fromFolder(join(dir, 'image_encoder'), loader);
    if (encoder.embedDim !== config.imageEmbedDim)
      throw new KinemaError(
        'STREAMING_BAD_CONFIG',
        `${dir}/image_encoder embeds to ${encoder.embedDim} values, the adapters expect ${config.imageEmbedDim}`,
      );
    return new StreamingAdaptersBundle(adapters, new Map([...unet.stateDict, ...own.stateDict]), encoder);
  }

  /** The adapters built fresh (zero-initialised: the base's behaviour) — for tests and as a training start. */
  static untrained(
    unet: UNet3DConditionModel,
    adapters: StreamingAdapters,
    encoder: ClipImageEncoder,
  ): StreamingAdaptersBundle {
    return new StreamingAdaptersBundle(
      adapters,
      new Map([...unet.stateDict, ...adapters.initFrom(unet.stateDict)]),
      encoder,
    );
  }

  get condFrames(): number {
    return this.adapters.config.condFrames;
  }

  /** The guided program of one chunk: (uncond, cond) rows through base + CAM + APM, combined with ω. */
  denoiser(pipe: TextToVideoPipeline, feeds: Record<string, HostTensor>): GuidedDenoiser {
    const unet = pipe.components.unet;
    return adapterDenoiser(pipe, this.weights, this.programs, feeds, (pair, t, ctx, x, fps) =>
      streamingForward(unet, this.adapters, pair, t, ctx, {
        condFrames: op.concat([x['cond_frames']!, x['cond_frames']!], 0),
        imageEmbeds: x['image_embeds']!,
        gate: x['gate']!,
        ...(fps && { fps }),
      }),
    );
  }

  /** `--long streaming`: the chunked core's mode for `pipe` (whose UNet these adapters were loaded for). */
  mode(pipe: TextToVideoPipeline, o: StreamingModeOptions = {}): LongVideoMode {
    const guidance = o.guidance ?? 'all';
    let embeds: { anchor: Float32Array; none: Float32Array } | null = null;
    const embedAnchor = async (c: ChunkContext): Promise<{ anchor: Float32Array; none: Float32Array }> => {
      if (embeds) return embeds;
      const anchor = o.anchor ?? c.firstFrame;
      if (!anchor) throw new KinemaError('PIPELINE_BAD_INPUT', 'StreamingT2V: no anchor frame yet');
      const gray = new Uint8Array(c.width * c.height * 3).fill(128); // an all-zero image in [−1, 1]
      const both = await this.anchorEncoder.embed([anchor, gray], c.width, c.height);
      const e = this.anchorEncoder.embedDim;
      embeds = { anchor: both.slice(0, e), none: both.slice(e) };
      return embeds;
    };
    return {
      name: 'streaming',
      check: (plan: ChunkPlan): void => {
        if (plan.overlap !== this.condFrames)
          throw new KinemaError(
            'LONG_STREAMING_OVERLAP',
            `--long streaming: the adapters condition on ${this.condFrames} frames, so --overlap must be ` +
              `${this.condFrames} (got ${plan.overlap})`,
          );
        if (o.anchor && o.anchor.length === 0)
          throw new KinemaError('STREAMING_BAD_INPUT', '--anchor: the anchor image is empty');
      },
      initialLatents: (c) =>
        c.generator.normal(c.shape.channels * c.shape.frames * c.shape.height * c.shape.width),
      denoise: async (c, chunkOpts) => {
        if (c.index === 0) return pipe.generate(chunkOpts); // the first chunk: the base model's own video
        const { anchor, none } = await embedAnchor(c);
        const e = this.anchorEncoder.embedDim;
        const image = new Float32Array(2 * e);
        image.set(none, 0);
        image.set(o.apm === false ? none : anchor, e);
        const k = this.condFrames;
        const feeds = {
          cond_frames: hostTensor(toFloatFrames(c.tail.slice(-k), c.width, c.height), [
            k,
            3,
            c.height,
            c.width,
          ]),
          image_embeds: hostTensor(image, [2, e]),
          gate: hostTensor(Float32Array.of(guidance === 'all' ? 0 : 1, 1), [2]),
        };
        return pipe.generate(chunkOpts, this.denoiser(pipe, feeds));
      },
    };
  }
}
