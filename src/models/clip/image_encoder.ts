// A pipeline folder's `image_encoder/` (a CLIPVisionModelWithProjection with its preprocessor_config.json; the
// default model ships the world CLIP's vision tower): the pooled, projected embedding of an image (StreamingT2V's
// APM anchor; the release uses OpenCLIP ViT-H's `visual` output) and the per-token states of its last layer,
// before the final LayerNorm (VideoCrafter1's image-to-video tokens).
import { CLIPVisionModel } from './vision_model.js';
import { CLIPModel } from './clip_model.js';
import { readClipPreprocess } from './embedder.js';
import { clipPreprocess } from '../../metrics/clip_metrics.js';
import type { ClipPreprocessOptions } from '../../metrics/clip_metrics.js';
import type { StateDict } from '../../nn/module.js';
import { readConfig } from '../../io/model_folder.js';
import type { FileLoader } from '../../io/loader.js';
import { KinemaError } from '../../errors.js';

type Embed = (pixels: Float32Array, count: number) => Promise<Float32Array>;
type Tokens = (
  pixels: Float32Array,
  count: number,
) => Promise<{ data: Float32Array; tokens: number; width: number }>;

export class ClipImageEncoder {
  private constructor(
    readonly embedDim: number,
    private readonly preprocess: Required<ClipPreprocessOptions>,
    private readonly run: Embed,
    /** The vision tower's weights and config (to write it as an image_encoder/ folder). */
    readonly vision: { config: Record<string, unknown>; stateDict: StateDict } | null,
    private readonly runTokens: Tokens | null = null,
  ) {}

  /** From an image_encoder/ folder (CLIPVisionModelWithProjection + preprocessor_config.json). */
  static async fromFolder(dir: string, loader?: FileLoader): Promise<ClipImageEncoder> {
    const model = await CLIPVisionModel.fromPretrained(dir, { withProjection: true });
    const pre = readClipPreprocess(dir, model.config.imageSize, loader);
    const tokens: Tokens = async (px, n) => {
      const h = (await model.encode(px, n)).lastHiddenState;
      return { data: h.data as Float32Array, tokens: h.shape[1]!, width: h.shape[2]! };
    };
    return new ClipImageEncoder(
      model.config.projectionDim,
      pre,
      async (px, n) => (await model.encode(px, n)).imageEmbeds!.data as Float32Array,
      null,
      tokens,
    );
  }

  /** From a CLIPModel folder (both towers): its vision tower and projection. */
  static async fromClipModel(dir: string): Promise<ClipImageEncoder> {
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
    return new ClipImageEncoder(
      dim,
      pre,
      async (px, n) => (await model.getImageFeatures(px, n)).data as Float32Array,
      { config, stateDict: sd },
    );
  }

  /** Embeddings [n·E] of RGB24 frames (each `width`×`height`, default square at the encoder's size). */
  async embed(frames: Uint8Array[], width?: number, height?: number): Promise<Float32Array> {
    return this.run(this.pixels(frames, width, height), frames.length);
  }

  /** The last layer's token states [n, N, width] (before the final LayerNorm) of RGB24 frames. */
  async tokens(
    frames: Uint8Array[],
    width?: number,
    height?: number,
  ): Promise<{ data: Float32Array; tokens: number; width: number }> {
    if (!this.runTokens)
      throw new KinemaError('CLIP_BAD_INPUT', 'image encoder: token states need an image_encoder/ folder');
    return this.runTokens(this.pixels(frames, width, height), frames.length);
  }

  private pixels(frames: Uint8Array[], width?: number, height?: number): Float32Array {
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
    return px;
  }
}
