// CLIP vision tower (transformers `CLIPVisionModel` / `CLIPVisionModelWithProjection`): a ViT with a bias-free
// patch convolution, a learned class token and position embeddings, `pre_layrnorm` (sic, the checkpoint's
// spelling), the shared pre-norm encoder and `post_layernorm` on the class token. Parameter names are the
// checkpoint keys (`vision_model.embeddings.patch_embedding.weight`, …).
import type { Tensor } from '../../engine/tensor.js';
import type { HostTensor } from '../../engine/runtime.js';
import { hostTensor } from '../../engine/runtime.js';
import type { ExecutionProvider } from '../../engine/runtime.js';
import * as op from '../../engine/ops.js';
import { Conv2d, type ConvNd, Embedding, LayerNorm, Linear } from '../../nn/layers.js';
import { Module, type StateDict } from '../../nn/module.js';
import { compileWithWeights, type CompiledFunction } from '../../nn/compile.js';
import { readConfig } from '../../io/model_folder.js';
import { parseClipVisionConfig, type ClipVisionConfig } from './config.js';
import { ClipEncoder, ProgramCache, loadWeightsFor, type ClipLoadOptions } from './text_model.js';
import { KinemaError } from '../../errors.js';

export class ClipVisionEmbeddings extends Module {
  readonly patchEmbedding: ConvNd;
  readonly positionEmbedding: Embedding;
  readonly numPatches: number;
  constructor(readonly config: ClipVisionConfig) {
    super();
    const d = config.hiddenSize;
    this.numPatches = (config.imageSize / config.patchSize) ** 2;
    this.declare('class_embedding', [d], { kind: 'normal', std: 1 });
    this.patchEmbedding = this.child(
      'patch_embedding',
      Conv2d(config.numChannels, d, { kernel: config.patchSize, stride: config.patchSize, bias: false }),
    );
    this.positionEmbedding = this.child('position_embedding', new Embedding(this.numPatches + 1, d));
  }

  /** pixels [N, C, S, S] (S = image_size) → [N, 1 + patches, D]: class token first, patches row-major. */
  forward(pixels: Tensor): Tensor {
    const { numChannels: c, imageSize: s, hiddenSize: d } = this.config;
    const [n] = pixels.shape as [number];
    if (pixels.shape.join() !== [n, c, s, s].join()) {
      throw new KinemaError(
        'CLIP_BAD_INPUT',
        `CLIP vision: pixel values must be [N, ${c}, ${s}, ${s}], got [${pixels.shape}]`,
      );
    }
    const patches = op.reshape(this.patchEmbedding.forward(pixels), [n, d, this.numPatches]);
    const classToken = op.expand(op.reshape(this.p('class_embedding'), [1, 1, d]), [n, 1, d]);
    const tokens = op.concat([classToken, op.transpose(patches, [0, 2, 1])], 1);
    return op.add(tokens, this.positionEmbedding.table());
  }
}

export interface VisionForward {
  lastHiddenState: Tensor;
  pooledOutput: Tensor;
  hiddenStates: Tensor[];
}

/** transformers' CLIPVisionTransformer (the `vision_model.` sub-module). */
export class ClipVisionTransformer extends Module {
  readonly embeddings: ClipVisionEmbeddings;
  readonly preLayrnorm: LayerNorm;
  readonly encoder: ClipEncoder;
  readonly postLayernorm: LayerNorm;
  constructor(readonly config: ClipVisionConfig) {
    super();
    this.embeddings = this.child('embeddings', new ClipVisionEmbeddings(config));
    this.preLayrnorm = this.child('pre_layrnorm', new LayerNorm(config.hiddenSize, config.layerNormEps));
    this.encoder = this.child('encoder', new ClipEncoder(config));
    this.postLayernorm = this.child('post_layernorm', new LayerNorm(config.hiddenSize, config.layerNormEps));
  }

  forward(pixels: Tensor): VisionForward {
    const enc = this.encoder.forward(this.preLayrnorm.forward(this.embeddings.forward(pixels)));
    const n = pixels.shape[0]!;
    const classToken = op.reshape(op.slice(enc.last, [0], [1], [1]), [n, this.config.hiddenSize]);
    return {
      lastHiddenState: enc.last,
      pooledOutput: this.postLayernorm.forward(classToken),
      hiddenStates: enc.hiddenStates,
    };
  }
}

/** Root module of a vision checkpoint: `vision_model.*`, plus `visual_projection.weight` with projection. */
export class ClipVisionRoot extends Module {
  readonly visionModel: ClipVisionTransformer;
  readonly visualProjection: Linear | null;
  constructor(config: ClipVisionConfig, withProjection: boolean) {
    super();
    this.visionModel = this.child('vision_model', new ClipVisionTransformer(config));
    this.visualProjection = withProjection
      ? this.child('visual_projection', new Linear(config.hiddenSize, config.projectionDim, false))
      : null;
  }
}

/** `count` images [C, S, S] back to back → a float32 [count, C, S, S] tensor (sizes checked). */
export function pixelTensor(pixels: Float32Array, count: number, config: ClipVisionConfig): HostTensor {
  const { numChannels: c, imageSize: s } = config;
  if (!Number.isSafeInteger(count) || count < 1)
    throw new KinemaError('CLIP_BAD_INPUT', `CLIP vision: image count must be ≥ 1, got ${count}`);
  if (pixels.length !== count * c * s * s) {
    throw new KinemaError(
      'CLIP_BAD_INPUT',
      `CLIP vision: ${pixels.length} pixel values do not hold ${count} images of [${c}, ${s}, ${s}] ` +
        `(${count * c * s * s} values); resize/crop to image_size ${s} first`,
    );
  }
  return hostTensor(pixels, [count, c, s, s], 'float32');
}

export interface VisionModelOptions extends ClipLoadOptions {
  /** Build CLIPVisionModelWithProjection (default: when config.architectures names it). */
  withProjection?: boolean;
}

export interface VisionEncodeResult {
  lastHiddenState: HostTensor;
  pooledOutput: HostTensor;
  /** CLIPVisionModelWithProjection only: visual_projection(pooledOutput). */
  imageEmbeds?: HostTensor;
  hiddenStates?: HostTensor[];
}

/** transformers' CLIPVisionModel (or CLIPVisionModelWithProjection) running on Kinema's engine. */
export class CLIPVisionModel {
  private readonly programs = new ProgramCache();

  constructor(
    readonly config: ClipVisionConfig,
    readonly module: ClipVisionRoot,
    readonly stateDict: StateDict,
    private readonly runOptions: { ep?: ExecutionProvider; threads?: number } = {},
  ) {
    module.validateStateDict(stateDict);
  }

  /** Loads a transformers vision-model folder (config.json + model[.fp16].safetensors); loading is strict. */
  static async fromPretrained(dir: string, opts: VisionModelOptions = {}): Promise<CLIPVisionModel> {
    const config = parseClipVisionConfig(readConfig(dir), `${dir}/config.json`);
    const withProjection =
      opts.withProjection ?? config.architectures.includes('CLIPVisionModelWithProjection');
    const module = new ClipVisionRoot(config, withProjection);
    const stateDict = loadWeightsFor(module, dir, opts.variant);
    return new CLIPVisionModel(config, module, stateDict, {
      ...(opts.ep && { ep: opts.ep }),
      ...(opts.threads !== undefined && { threads: opts.threads }),
    });
  }

  get withProjection(): boolean {
    return this.module.visualProjection !== null;
  }

  /** Runs the vision tower on `count` preprocessed images [C, S, S] stored back to back. */
  async encode(
    pixels: Float32Array,
    count: number,
    opts: { outputHiddenStates?: boolean } = {},
  ): Promise<VisionEncodeResult> {
    const input = pixelTensor(pixels, count, this.config);
    const hidden = opts.outputHiddenStates ?? false;
    const fn = await this.programs.get(`${count}|${hidden}`, () =>
      compileWithWeights(
        this.forwardFn(hidden),
        [{ name: 'pixel_values', shape: input.shape }],
        this.stateDict,
        this.runOptions,
      ),
    );
    const out = await fn.exe.run({ pixel_values: input });
    const result: VisionEncodeResult = {
      lastHiddenState: out['last_hidden_state']!,
      pooledOutput: out['pooler_output']!,
    };
    if (this.withProjection) result.imageEmbeds = out['image_embeds']!;
    if (hidden) {
      result.hiddenStates = Array.from(
        { length: this.config.numHiddenLayers + 1 },
        (_, i) => out[`hidden_states.${i}`]!,
      );
    }
    return result;
  }

  /** The traced forward (exposed for tests and benchmarks). */
  forwardFn(hidden: boolean): (pixels: Tensor) => Record<string, Tensor> {
    return (pixels: Tensor) => {
      const r = this.module.visionModel.forward(pixels);
      const out: Record<string, Tensor> = {
        last_hidden_state: r.lastHiddenState,
        pooler_output: r.pooledOutput,
      };
      if (this.module.visualProjection)
        out['image_embeds'] = this.module.visualProjection.forward(r.pooledOutput);
      if (hidden) r.hiddenStates.forEach((h, i) => (out[`hidden_states.${i}`] = h));
      return out;
    };
  }
}
