// A `ClipEmbedder` (the metrics' interface) backed by a CLIPModel folder: CLIPModel weights + config.json,
// the CLIP tokenizer files and, optionally, preprocessor_config.json (CLIPImageProcessor settings).
import { parseJsonLenient } from '../../io/json.js';
import { joinPath as join, resolveLoader } from '../../io/loader.js';
import type { FileLoader } from '../../io/loader.js';
import { ModelLoadError } from '../../io/model_folder.js';
import {
  OPENAI_CLIP_MEAN,
  OPENAI_CLIP_STD,
  type ClipEmbedder,
  type ClipPreprocessOptions,
} from '../../metrics/clip_metrics.js';
import type { HostTensor } from '../../engine/runtime.js';
import { CLIPModel } from './clip_model.js';
import type { ClipLoadOptions } from './text_model.js';
import { CLIPTokenizer } from './tokenizer.js';

export interface LoadedClipEmbedder extends ClipEmbedder {
  readonly model: CLIPModel;
  readonly tokenizer: CLIPTokenizer;
  /** Preprocessing that produces the model's input size (pass it to the CLIP scorers). */
  readonly preprocess: Required<ClipPreprocessOptions>;
}

function rows(t: HostTensor): Float32Array[] {
  const [n, d] = t.shape as [number, number];
  const data = t.data as Float32Array;
  return Array.from({ length: n }, (_, i) => data.slice(i * d, (i + 1) * d));
}

function triple(v: unknown, key: string, path: string): [number, number, number] {
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new ModelLoadError(`${path}: "${key}" must be a list of 3 numbers`);
  }
  return [v[0], v[1], v[2]] as [number, number, number];
}

/** A size entry of preprocessor_config.json: an int, or {shortest_edge} / {height, width} (square only). */
function sizeEntry(v: unknown, key: string, path: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return v;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    const edge = o['shortest_edge'] ?? (o['height'] === o['width'] ? o['height'] : undefined);
    if (typeof edge === 'number' && Number.isSafeInteger(edge) && edge > 0) return edge;
  }
  throw new ModelLoadError(
    `${path}: "${key}" must be a positive integer, {shortest_edge} or a square {height, width}`,
  );
}

/** CLIPImageProcessor settings from preprocessor_config.json, else the OpenAI defaults at the model's size. */
export function readClipPreprocess(
  dir: string,
  imageSize: number,
  loader?: FileLoader,
): Required<ClipPreprocessOptions> {
  const files = resolveLoader(loader);
  const path = join(dir, 'preprocessor_config.json');
  const defaults = {
    shortestEdge: imageSize,
    cropSize: imageSize,
    mean: OPENAI_CLIP_MEAN,
    std: OPENAI_CLIP_STD,
  };
  if (files.kind(path) === null) return defaults;
  const raw = parseJsonLenient(files.readText(path), path);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelLoadError(`${path} must hold a JSON object`);
  }
  const cfg = raw as Record<string, unknown>;
  const out: Required<ClipPreprocessOptions> = {
    shortestEdge: cfg['size'] === undefined ? imageSize : sizeEntry(cfg['size'], 'size', path),
    cropSize: cfg['crop_size'] === undefined ? imageSize : sizeEntry(cfg['crop_size'], 'crop_size', path),
    mean: cfg['image_mean'] === undefined ? OPENAI_CLIP_MEAN : triple(cfg['image_mean'], 'image_mean', path),
    std: cfg['image_std'] === undefined ? OPENAI_CLIP_STD : triple(cfg['image_std'], 'image_std', path),
  };
  if (out.cropSize !== imageSize) {
    throw new ModelLoadError(
      `${path}: crop_size ${out.cropSize} differs from the vision model's image_size ${imageSize}`,
    );
  }
  return out;
}

/** Loads a CLIPModel folder (weights, config, tokenizer files, optional preprocessor_config.json). */
export async function loadClipEmbedder(dir: string, opts: ClipLoadOptions = {}): Promise<LoadedClipEmbedder> {
  const model = await CLIPModel.fromPretrained(dir, opts);
  const tokenizer = await CLIPTokenizer.fromPretrained(dir);
  const text = model.config.textConfig;
  const preprocess = readClipPreprocess(dir, model.config.visionConfig.imageSize);
  return {
    model,
    tokenizer,
    preprocess,
    async embedImages(pixels: Float32Array, count: number): Promise<Float32Array[]> {
      return rows(await model.getImageFeatures(pixels, count));
    },
    async embedText(prompt: string): Promise<Float32Array> {
      // As torchmetrics' CLIPScore: truncated to the model's context, with the attention mask.
      const enc = tokenizer.encode(prompt, {
        padding: 'max_length',
        truncation: true,
        maxLength: text.maxPositionEmbeddings,
      });
      const features = await model.getTextFeatures([enc.inputIds], { attentionMask: [enc.attentionMask] });
      return rows(features)[0]!;
    },
  };
}
