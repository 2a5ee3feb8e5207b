// transformers' dual-tower `CLIPModel` in the Hugging Face folder layout: config.json with `text_config`,
// `vision_config` and `projection_dim`; weights `text_model.*`, `vision_model.*`, `text_projection.weight`,
// `visual_projection.weight` and `logit_scale`. Image and text features are the projected pooled outputs
// (not normalised), as `get_image_features` / `get_text_features` return them.
import type { Tensor } from '../../engine/tensor.js';
import type { HostTensor } from '../../engine/runtime.js';
import type { ExecutionProvider } from '../../engine/runtime.js';
import { Linear } from '../../nn/layers.js';
import { Module, type StateDict } from '../../nn/module.js';
import { compileWithWeights } from '../../nn/compile.js';
import { readConfig } from '../../io/model_folder.js';
import { parseClipConfig, type ClipConfig } from './config.js';
import {
  ClipTextTransformer,
  ProgramCache,
  checkTokenIds,
  idsTensor,
  loadWeightsFor,
  type ClipLoadOptions,
} from './text_model.js';
import { ClipVisionTransformer, pixelTensor } from './vision_model.js';
import { KinemaError } from '../../errors.js';

export class ClipModelRoot extends Module {
  readonly textModel: ClipTextTransformer;
  readonly visionModel: ClipVisionTransformer;
  readonly visualProjection: Linear;
  readonly textProjection: Linear;
  constructor(readonly config: ClipConfig) {
    super();
    const { textConfig, visionConfig, projectionDim } = config;
    this.textModel = this.child('text_model', new ClipTextTransformer(textConfig));
    this.visionModel = this.child('vision_model', new ClipVisionTransformer(visionConfig));
    this.visualProjection = this.child(
      'visual_projection',
      new Linear(visionConfig.hiddenSize, projectionDim, false),
    );
    this.textProjection = this.child(
      'text_projection',
      new Linear(textConfig.hiddenSize, projectionDim, false),
    );
    this.declare('logit_scale', [], { kind: 'zeros' });
  }

  /** pixels [N, C, S, S] → image features [N, projection_dim]. */
  imageFeatures(pixels: Tensor): Tensor {
    return this.visualProjection.forward(this.visionModel.forward(pixels).pooledOutput);
  }

  /** ids int64 [B, L] (optional attention mask [B, L]) → text features [B, projection_dim]. */
  textFeatures(ids: Tensor, attentionMask?: Tensor): Tensor {
    return this.textProjection.forward(this.textModel.forward(ids, attentionMask).pooledOutput);
  }
}

/** transformers' CLIPModel running on Kinema's engine. */
export class CLIPModel {
  private readonly programs = new ProgramCache();

  constructor(
    readonly config: ClipConfig,
    readonly module: ClipModelRoot,
    readonly stateDict: StateDict,
    private readonly runOptions: { ep?: ExecutionProvider; threads?: number } = {},
  ) {
    module.validateStateDict(stateDict);
  }

  /** Loads a CLIPModel folder (config.json + model[.fp16].safetensors); loading is strict. */
  static async fromPretrained(dir: string, opts: ClipLoadOptions = {}): Promise<CLIPModel> {
    const config = parseClipConfig(readConfig(dir), `${dir}/config.json`);
    const module = new ClipModelRoot(config);
    const stateDict = loadWeightsFor(module, dir, opts.variant);
    return new CLIPModel(config, module, stateDict, {
      ...(opts.ep && { ep: opts.ep }),
      ...(opts.threads !== undefined && { threads: opts.threads }),
    });
  }

  /** The learned temperature exp(logit_scale) that multiplies cosine similarities in CLIP's logits. */
  get logitScale(): number {
    return Math.exp(this.stateDict.get('logit_scale')![0]!);
  }

  /** Projected image features [N, projection_dim] of `count` preprocessed images [C, S, S] back to back. */
  async getImageFeatures(pixels: Float32Array, count: number): Promise<HostTensor> {
    const input = pixelTensor(pixels, count, this.config.visionConfig);
    const fn = await this.programs.get(`image|${count}`, () =>
      compileWithWeights(
        (x: Tensor) => ({ image_embeds: this.module.imageFeatures(x) }),
        [{ name: 'pixel_values', shape: input.shape }],
        this.stateDict,
        this.runOptions,
      ),
    );
    return (await fn.exe.run({ pixel_values: input }))['image_embeds']!;
  }

  /** Projected text features [B, projection_dim] of token ids [B, L] (rows, or flat [B, 77]). */
  async getTextFeatures(
    inputIds: number[][] | BigInt64Array,
    opts: { attentionMask?: number[][] | BigInt64Array } = {},
  ): Promise<HostTensor> {
    const text = this.config.textConfig;
    const ids = idsTensor(inputIds, text.maxPositionEmbeddings);
    checkTokenIds(ids, text.vocabSize);
    const [b, l] = ids.shape as [number, number];
    const feeds: Record<string, HostTensor> = { input_ids: ids };
    const specs = [{ name: 'input_ids', shape: [b, l], dtype: 'int64' as const }];
    if (opts.attentionMask) {
      feeds['attention_mask'] = idsTensor(opts.attentionMask, l, 'attention mask');
      if (feeds['attention_mask'].shape.join() !== ids.shape.join()) {
        throw new KinemaError(
          'CLIP_BAD_INPUT',
          `CLIP text: attention mask shape [${feeds['attention_mask'].shape}] differs from ids [${ids.shape}]`,
        );
      }
      specs.push({ name: 'attention_mask', shape: [b, l], dtype: 'int64' });
    }
    const masked = opts.attentionMask !== undefined;
    const fn = await this.programs.get(`text|${b}x${l}|${masked}`, () =>
      compileWithWeights(
        (x: Tensor, mask?: Tensor) => ({
          text_embeds: this.module.textFeatures(x, masked ? mask : undefined),
        }),
        specs,
        this.stateDict,
        this.runOptions,
      ),
    );
    return (await fn.exe.run(feeds))['text_embeds']!;
  }
}

/** CLIP's logits_per_image [N, B]: exp(logit_scale) · cos(image_n, text_b). */
export function logitsPerImage(
  imageFeatures: HostTensor,
  textFeatures: HostTensor,
  logitScale: number,
): Float32Array {
  const [n, d] = imageFeatures.shape as [number, number];
  const [b, d2] = textFeatures.shape as [number, number];
  if (d !== d2)
    throw new KinemaError('CLIP_BAD_INPUT', `logitsPerImage: feature sizes differ (${d} vs ${d2})`);
  const img = unitRows(imageFeatures.data as Float32Array, n, d);
  const txt = unitRows(textFeatures.data as Float32Array, b, d);
  const out = new Float32Array(n * b);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < b; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += img[i * d + k]! * txt[j * d + k]!;
      out[i * b + j] = logitScale * dot;
    }
  }
  return out;
}

function unitRows(data: Float32Array, rows: number, d: number): Float64Array {
  const out = Float64Array.from(data);
  for (let r = 0; r < rows; r++) {
    let norm = 0;
    for (let k = 0; k < d; k++) norm += out[r * d + k]! ** 2;
    norm = Math.sqrt(norm);
    if (norm === 0) throw new KinemaError('CLIP_BAD_INPUT', `logitsPerImage: feature row ${r} is all zeros`);
    for (let k = 0; k < d; k++) out[r * d + k]! /= norm;
  }
  return out;
}
