// The APM's image encoder: the pooled, projected CLIP image embedding of an anchor frame (the release uses
// OpenCLIP ViT-H's `visual` output; Kinema's default is the world CLIP's vision tower, shipped as a
// CLIPVisionModelWithProjection folder `image_encoder/` with its preprocessor_config.json).
import { CLIPVisionModel } from '../clip/vision_model.js';
import { CLIPModel } from '../clip/clip_model.js';
import { readClipPreprocess } from '../clip/embedder.js';
import { clipPreprocess } from '../../metrics/clip_metrics.js';
import type { ClipPreprocessOptions } from '../../metrics/clip_metrics.js';
import type { StateDict } from '../../nn/module.js';
import { readConfig } from '../../io/model_folder.js';
import type { FileLoader } from '../../io/loader.js';
import { KinemaError } from '../../errors.js';

type Embed = (pixels: Float32Array, count: number) => Promise<Float32Array>;

export class AnchorEncoder {
  private constructor(
    readonly embedDim: number,
    private readonly preprocess: Required<ClipPreprocessOptions>,
    private readonly run: Embed,
    /** The vision tower's weights and config (to write it as an image_encoder/ folder). */
    readonly vision: { config: Record<string, unknown>; stateDict: StateDict } | null,
  ) {}

  /** From an image_encoder/ folder (CLIPVisionModelWithProjection + preprocessor_config.json). */
  static async fromFolder(dir: string, loader?: FileLoader): Promise<AnchorEncoder> {
    const model = await CLIPVisionModel.fromPretrained(dir, { withProjection: true });
    const pre = readClipPreprocess(dir, model.config.imageSize, loader);
    return new AnchorEncoder(
      model.config.projectionDim,
      pre,
      async (px, n) => {
        const r = await model.encode(px, n);
        return r.imageEmbeds!.data as Float32Array;
      },
      null,
    );
  }

  /** From a CLIPModel folder (both towers): its vision tower and projection. */
  static async fromClipModel(dir: string): Promise<AnchorEncoder> {
    const model = await CLIPModel.fromPretrained(dir);
    const v = model.config.visionConfig;
    const dim = model.config.projectionDim; // CLIPModel's projection (the vision config's own may differ)
    const pre = readClipPreprocess(dir, v.imageSize);
    const sd: StateDict = new Map(
      [...model.stateDict].filter(
        ([k]) => k.startsWith('vision_model.') || k.startsWith('visual_projection.'),
      ),
    );
    const raw = readConfig(dir) as Record<string, unknown>;
    const config = {
      ...(raw['vision_config'] as Record<string, unknown>),
      architectures: ['CLIPVisionModelWithProjection'],
      projection_dim: dim,
      model_type: 'clip_vision_model',
    };
    return new AnchorEncoder(
      dim,
      pre,
      async (px, n) => (await model.getImageFeatures(px, n)).data as Float32Array,
      { config, stateDict: sd },
    );
  }

  /** Embeddings [n·E] of RGB24 frames (each `width`×`height`, default square at the encoder's size). */
  async embed(frames: Uint8Array[], width?: number, height?: number): Promise<Float32Array> {
    const s = this.preprocess.cropSize;
    const n = frames.length;
    const px = new Float32Array(n * 3 * s * s);
    frames.forEach((f, i) => {
      const w = width ?? Math.round(Math.sqrt(f.length / 3));
      const h = height ?? w;
      if (f.length !== w * h * 3)
        throw new KinemaError(
          'STREAMING_BAD_INPUT',
          `anchor frame ${i}: ${f.length} bytes is not ${w}×${h} RGB`,
        );
      px.set(clipPreprocess(f, w, h, this.preprocess), i * 3 * s * s);
    });
    return this.run(px, n);
  }
}
