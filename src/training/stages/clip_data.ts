// World data for the CLIP stage — captions for the tokenizer, (frame, caption) pairs, token ids — and the
// retrieval accuracy of a CLIP model within batches of pairs: is a caption's own image the most similar one
// of the batch (cosine similarity of the projected features)? And the converse.
import { hostTensor, type HostTensor } from '../../engine/runtime.js';
import type { CLIPModel } from '../../models/clip/clip_model.js';
import type { CLIPTokenizer } from '../../models/clip/tokenizer.js';
import { toFloatCHW, worldSample } from '../data/world.js';
import { indexedGenerator } from './common.js';

/** Generator purpose of the tokenizer corpus' image-mode choices. */
const PURPOSE_TOKENIZER = 2;

/** Captions of world samples 0..count-1 (training split; every `1/imageFraction`-th in image mode). */
export function worldCaptions(seed: number, count: number, imageFraction: number): string[] {
  const rng = indexedGenerator(seed, PURPOSE_TOKENIZER, 0);
  const u = rng.uniform(count);
  return Array.from(
    { length: count },
    (_, i) =>
      worldSample(seed, i, {
        width: 8,
        height: 8,
        frames: 1,
        split: 'train',
        imageMode: u[i]! < imageFraction,
      }).caption,
  );
}

export interface PairBatch {
  /** [count, 3, S, S] in [-1, 1]. */
  readonly pixels: Float32Array;
  readonly captions: string[];
}

/** World pairs: the middle frame of each sample (a video, or one image-mode frame) and its caption. */
export function worldPairs(
  seed: number,
  indices: readonly number[],
  imageMode: readonly boolean[],
  split: 'train' | 'heldout',
  size: number,
  videoFrames: number,
): PairBatch {
  const per = 3 * size * size;
  const pixels = new Float32Array(indices.length * per);
  const captions = indices.map((index, b) => {
    const image = imageMode[b] === true;
    const s = worldSample(seed, index, {
      width: size,
      height: size,
      frames: image ? 1 : videoFrames,
      split,
      imageMode: image,
    });
    const frame = s.frames[Math.floor(s.frames.length / 2)]!;
    pixels.set(toFloatCHW([frame], size, size), b * per);
    return s.caption;
  });
  return { pixels, captions };
}

/** Token ids [count, 77] (bos, tokens, eos, padded with the pad token), as the pipeline encodes prompts. */
export function tokenIds(tokenizer: CLIPTokenizer, captions: readonly string[], length: number): HostTensor {
  const data = new BigInt64Array(captions.length * length);
  captions.forEach((c, b) => {
    const ids = tokenizer.encode(c, { maxLength: length }).inputIds;
    ids.forEach((id, j) => (data[b * length + j] = BigInt(id)));
  });
  return hostTensor(data, [captions.length, length], 'int64');
}

export interface RetrievalResult {
  /** Fraction of captions whose best-matching image (of the batch) is their own. */
  readonly textToImageTop1: number;
  readonly imageToTextTop1: number;
  readonly textToImageTop5: number;
  readonly pairs: number;
}

function rank(sim: Float64Array, n: number, row: number, transpose: boolean): number {
  const at = (j: number): number => (transpose ? sim[j * n + row]! : sim[row * n + j]!);
  const own = at(row);
  let better = 0;
  for (let j = 0; j < n; j++) if (j !== row && at(j) >= own) better++;
  return better;
}

/** Top-1/top-5 retrieval within each batch of `batchSize` pairs (ties count against the model). */
export async function retrievalAccuracy(
  model: CLIPModel,
  tokenizer: CLIPTokenizer,
  batches: PairBatch[],
): Promise<RetrievalResult> {
  let t2i = 0;
  let i2t = 0;
  let t2i5 = 0;
  let total = 0;
  for (const batch of batches) {
    const n = batch.captions.length;
    const img = (await model.getImageFeatures(batch.pixels, n)).data as Float32Array;
    const ids = tokenIds(tokenizer, batch.captions, model.config.textConfig.maxPositionEmbeddings);
    const txt = (await model.getTextFeatures(ids.data as BigInt64Array)).data as Float32Array;
    const d = model.config.projectionDim;
    const sim = new Float64Array(n * n);
    const norm = (v: Float32Array, i: number): number => Math.hypot(...v.subarray(i * d, (i + 1) * d));
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let dot = 0;
        for (let k = 0; k < d; k++) dot += img[i * d + k]! * txt[j * d + k]!;
        sim[i * n + j] = dot / (norm(img, i) * norm(txt, j));
      }
    }
    for (let i = 0; i < n; i++) {
      const textRank = rank(sim, n, i, true);
      if (textRank === 0) t2i++;
      if (textRank < 5) t2i5++;
      if (rank(sim, n, i, false) === 0) i2t++;
    }
    total += n;
  }
  return {
    textToImageTop1: t2i / total,
    imageToTextTop1: i2t / total,
    textToImageTop5: t2i5 / total,
    pairs: total,
  };
}
