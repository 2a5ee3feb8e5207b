// Model-agnostic parts of the CLIP metrics: image preprocessing and the score arithmetic. The CLIP model itself
// is anything implementing `ClipEmbedder`.
//
// Preprocessing reproduces transformers' `CLIPImageProcessor` (defaults of openai/clip-vit-*):
// 1. resize so the shortest side is 224: the short side becomes exactly 224 and the long side
//    int(224 · long / short) (truncated), with Pillow BICUBIC resampling (antialiased, a = −0.5, 8-bit result);
// 2. center crop 224x224: top = (H − 224) // 2, left = (W − 224) // 2 (zero padding if the image is smaller);
// 3. rescale by 1/255 (in float64, stored as float32);
// 4. normalise per channel (x − mean) / std in float32, mean [0.48145466, 0.4578275, 0.40821073],
//    std [0.26862954, 0.26130258, 0.27577711];
// output planar float32 [3, 224, 224].
//
// CLIP score (Hessel et al. 2021, as torchmetrics' `CLIPScore` computes it per image):
//   clipScore = mean over frames f of max(100 · cos(E_img(f), E_txt(prompt)), 0).
// Frame consistency (as in Tune-A-Video / common T2V evaluations):
//   frameConsistency = mean over consecutive frames t of cos(E_img(f_t), E_img(f_{t+1})).
import { resizeRgbPil, type RgbVideo } from './image_ops.js';
import { KinemaError } from '../errors.js';

export const OPENAI_CLIP_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export interface ClipPreprocessOptions {
  /** Target shortest side after resizing. Default 224. */
  shortestEdge?: number;
  /** Center-crop size (square). Default 224. */
  cropSize?: number;
  mean?: readonly [number, number, number];
  std?: readonly [number, number, number];
}

/** Image and text embeddings of a CLIP model. */
export interface ClipEmbedder {
  /** `pixels` holds `count` preprocessed images back to back, each [3, S, S]; returns one embedding per image. */
  embedImages(pixels: Float32Array, count: number): Promise<Float32Array[]>;
  embedText(text: string): Promise<Float32Array>;
  /** The model's own preprocessing (its image size); a scorer uses it unless told otherwise. */
  readonly preprocess?: ClipPreprocessOptions;
}

/** Output (height, width) of transformers' shortest-edge resize. */
export function clipResizeSize(
  width: number,
  height: number,
  shortestEdge: number,
): { width: number; height: number } {
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  const newLong = Math.floor((shortestEdge * long) / short);
  return width <= height
    ? { width: shortestEdge, height: newLong }
    : { width: newLong, height: shortestEdge };
}

/** CLIPImageProcessor preprocessing of one RGB24 frame → planar float32 [3, crop, crop]. */
export function clipPreprocess(
  rgb: Uint8Array,
  width: number,
  height: number,
  opts: ClipPreprocessOptions = {},
): Float32Array {
  const shortestEdge = opts.shortestEdge ?? 224;
  const crop = opts.cropSize ?? 224;
  const mean = opts.mean ?? OPENAI_CLIP_MEAN;
  const std = opts.std ?? OPENAI_CLIP_STD;
  if (rgb.length !== width * height * 3) {
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      `clipPreprocess: expected ${width * height * 3} bytes for ${width}x${height} RGB, got ${rgb.length}`,
    );
  }
  const size = clipResizeSize(width, height, shortestEdge);
  const resized = resizeRgbPil(rgb, width, height, size.width, size.height);
  // transformers' center_crop, including its zero padding when the crop exceeds the image.
  const newH = Math.max(crop, size.height);
  const newW = Math.max(crop, size.width);
  const topPad = Math.ceil((newH - size.height) / 2);
  const leftPad = Math.ceil((newW - size.width) / 2);
  const top = Math.floor((size.height - crop) / 2) + topPad;
  const left = Math.floor((size.width - crop) / 2) + leftPad;
  const plane = crop * crop;
  const out = new Float32Array(3 * plane);
  const scale = 1 / 255;
  const m = mean.map((v) => Math.fround(v));
  const s = std.map((v) => Math.fround(v));
  for (let y = 0; y < crop; y++) {
    const sy = top + y - topPad;
    for (let x = 0; x < crop; x++) {
      const sx = left + x - leftPad;
      const inside = sy >= 0 && sy < size.height && sx >= 0 && sx < size.width;
      for (let c = 0; c < 3; c++) {
        const v = inside ? resized[(sy * size.width + sx) * 3 + c]! : 0;
        const rescaled = Math.fround(v * scale);
        out[c * plane + y * crop + x] = Math.fround(Math.fround(rescaled - m[c]!) / s[c]!);
      }
    }
  }
  return out;
}

export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length || a.length === 0) {
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      `cosineSimilarity: embedding sizes differ or are empty (${a.length} vs ${b.length})`,
    );
  }
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  if (na === 0 || nb === 0)
    throw new KinemaError('METRIC_BAD_INPUT', 'cosineSimilarity: zero-length embedding');
  return dot / Math.sqrt(na * nb);
}

export interface ClipScorerOptions {
  /** Prompt for the CLIP score; without it only frame consistency is computed. */
  prompt?: string;
  /** Images per `embedImages` call. Default 16. */
  batchSize?: number;
  preprocess?: ClipPreprocessOptions;
}

export interface ClipVideoScores {
  /** null when no prompt was given. */
  clipScore: number | null;
  /** null with fewer than 2 frames. */
  frameConsistency: number | null;
  /** Per frame: max(100 · cos(image, text), 0); empty without a prompt. */
  perFrameClipScore: number[];
  frames: number;
}

/** Streams frames of one video through a `ClipEmbedder`, batching them. */
export class ClipVideoScorer {
  private readonly batch: Float32Array[] = [];
  private readonly batchSize: number;
  private textEmbedding: Float32Array | null = null;
  private lastEmbedding: Float32Array | null = null;
  private readonly perFrame: number[] = [];
  private consistencySum = 0;
  private pairs = 0;
  private frames = 0;

  constructor(
    private readonly embedder: ClipEmbedder,
    private readonly width: number,
    private readonly height: number,
    private readonly opts: ClipScorerOptions = {},
  ) {
    this.batchSize = opts.batchSize ?? 16;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1)
      throw new KinemaError('METRIC_BAD_INPUT', `CLIP: bad batch size ${this.batchSize}`);
  }

  async push(frame: Uint8Array): Promise<void> {
    this.batch.push(
      clipPreprocess(frame, this.width, this.height, this.opts.preprocess ?? this.embedder.preprocess),
    );
    if (this.batch.length >= this.batchSize) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.batch.length === 0) return;
    if (this.opts.prompt !== undefined && this.textEmbedding === null) {
      this.textEmbedding = await this.embedder.embedText(this.opts.prompt);
    }
    const per = this.batch[0]!.length;
    const pixels = new Float32Array(per * this.batch.length);
    this.batch.forEach((p, i) => pixels.set(p, i * per));
    const count = this.batch.length;
    this.batch.length = 0;
    const embeddings = await this.embedder.embedImages(pixels, count);
    if (embeddings.length !== count)
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `CLIP: embedImages returned ${embeddings.length} embeddings for ${count} images`,
      );
    for (const e of embeddings) {
      if (this.textEmbedding !== null)
        this.perFrame.push(Math.max(100 * cosineSimilarity(e, this.textEmbedding), 0));
      if (this.lastEmbedding !== null) {
        this.consistencySum += cosineSimilarity(this.lastEmbedding, e);
        this.pairs++;
      }
      this.lastEmbedding = e;
      this.frames++;
    }
  }

  async finish(): Promise<ClipVideoScores> {
    await this.flush();
    if (this.frames === 0) throw new KinemaError('METRIC_BAD_INPUT', 'CLIP: no frames');
    const clipScore =
      this.textEmbedding === null ? null : this.perFrame.reduce((a, b) => a + b, 0) / this.perFrame.length;
    return {
      clipScore,
      frameConsistency: this.pairs === 0 ? null : this.consistencySum / this.pairs,
      perFrameClipScore: [...this.perFrame],
      frames: this.frames,
    };
  }
}

/** CLIP score of a video against a prompt: mean over frames of max(100 · cos, 0). */
export async function clipScore(
  video: RgbVideo,
  prompt: string,
  embedder: ClipEmbedder,
  opts: ClipScorerOptions = {},
): Promise<number> {
  const scorer = new ClipVideoScorer(embedder, video.width, video.height, { ...opts, prompt });
  for (const f of video.frames) await scorer.push(f);
  return (await scorer.finish()).clipScore!;
}

/** Mean cosine similarity of the CLIP image embeddings of consecutive frames (at least 2 frames). */
export async function frameConsistency(
  video: RgbVideo,
  embedder: ClipEmbedder,
  opts: ClipScorerOptions = {},
): Promise<number> {
  if (video.frames.length < 2)
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      `frame consistency needs at least 2 frames, got ${video.frames.length}`,
    );
  const scorer = new ClipVideoScorer(embedder, video.width, video.height, { ...opts, prompt: undefined });
  for (const f of video.frames) await scorer.push(f);
  return (await scorer.finish()).frameConsistency!;
}
