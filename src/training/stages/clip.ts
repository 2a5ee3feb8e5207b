// `kinema train clip`: a byte-level BPE tokenizer trained on world captions, then a tiny CLIPModel trained
// contrastively (Radford et al. 2021: symmetric InfoNCE over a batch with a learnable temperature, clamped at
// 100) on (middle frame of a world video or an image-mode frame, random paraphrase caption) pairs.
// Outputs: `<out>/tokenizer/`, `<out>/clip_model/` (CLIPModel + tokenizer + preprocessor_config.json, for
// `kinema eval --clip`), and with an export folder `<export>/text_encoder/` (transformers CLIPTextModel, fp16)
// and `<export>/tokenizer/`. Retrieval accuracy is measured on held-out-split scenes.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { hostTensor, type HostTensor } from '../../engine/runtime.js';
import type { StateDict } from '../../nn/module.js';
import { ClipModelRoot, CLIPModel } from '../../models/clip/clip_model.js';
import { ClipTextRoot } from '../../models/clip/text_model.js';
import { parseClipConfig, type ClipActivation } from '../../models/clip/config.js';
import { CLIPTokenizer } from '../../models/clip/tokenizer.js';
import { saveClipTokenizer, trainClipBpe } from '../../models/clip/bpe_trainer.js';
import { GradStep } from '../trainer.js';
import { exportComponent, writeJsonAtomic } from '../export.js';
import { indexedGenerator, logLine, prefetching, runTraining, writeRunReport } from './common.js';
import type { StageDefinition, StageOptions, StageResult } from './common.js';
import { clipInitParameters } from './clip_init.js';
import { retrievalAccuracy, tokenIds, worldCaptions, worldPairs, type PairBatch } from './clip_data.js';

/** The tiny CLIP's shape (both towers share hidden size, heads and MLP width). */
export interface ClipArchitecture {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numAttentionHeads: number;
  readonly textLayers: number;
  readonly visionLayers: number;
  readonly projectionDim: number;
  readonly imageSize: number;
  readonly patchSize: number;
  readonly maxPositionEmbeddings: number;
  readonly hiddenAct: ClipActivation;
}

export const DEFAULT_CLIP_ARCHITECTURE: ClipArchitecture = {
  hiddenSize: 64,
  intermediateSize: 256,
  numAttentionHeads: 4,
  textLayers: 3,
  visionLayers: 2,
  projectionDim: 64,
  imageSize: 64,
  patchSize: 8,
  maxPositionEmbeddings: 77,
  hiddenAct: 'quick_gelu',
};

/** Stage settings beyond the common flags (tests shrink them). */
export interface ClipStageSettings {
  readonly architecture?: ClipArchitecture;
  /** Captions the tokenizer is trained on (default 20000). */
  readonly tokenizerCaptions?: number;
  /** Upper bound of the BPE vocabulary (default 2048; the world's small vocabulary may stop earlier). */
  readonly vocabSize?: number;
  /** Frames of each world video (its middle frame is used; default 16, the world's nominal clip). */
  readonly videoFrames?: number;
  /** Fraction of pairs drawn in image mode (default 0.25). */
  readonly imageFraction?: number;
  /** Retrieval evaluation: batches of `evalBatchSize` pairs (default 8 × 64). */
  readonly evalBatches?: number;
  readonly evalBatchSize?: number;
  readonly warmupSteps?: number;
}

const PURPOSE_TRAIN = 1;
/** diffusers/transformers CLIP logit scale cap: exp(logit_scale) ≤ 100. */
const MAX_LOGIT_SCALE = Math.log(100);

/** transformers CLIPConfig JSON (CLIPModel layout) for an architecture and a trained tokenizer. */
export function clipModelConfigJson(
  a: ClipArchitecture,
  tok: { vocabSize: number; bosTokenId: number; eosTokenId: number; padTokenId: number },
): Record<string, unknown> {
  const tower = {
    hidden_size: a.hiddenSize,
    intermediate_size: a.intermediateSize,
    num_attention_heads: a.numAttentionHeads,
    hidden_act: a.hiddenAct,
    layer_norm_eps: 1e-5,
    attention_dropout: 0,
    initializer_factor: 1,
    initializer_range: 0.02,
    projection_dim: a.projectionDim,
  };
  return {
    architectures: ['CLIPModel'],
    model_type: 'clip',
    projection_dim: a.projectionDim,
    logit_scale_init_value: 2.6592,
    initializer_factor: 1,
    torch_dtype: 'float16',
    text_config: {
      ...tower,
      model_type: 'clip_text_model',
      num_hidden_layers: a.textLayers,
      max_position_embeddings: a.maxPositionEmbeddings,
      vocab_size: tok.vocabSize,
      bos_token_id: tok.bosTokenId,
      eos_token_id: tok.eosTokenId,
      pad_token_id: tok.padTokenId,
    },
    vision_config: {
      ...tower,
      model_type: 'clip_vision_model',
      num_hidden_layers: a.visionLayers,
      num_channels: 3,
      image_size: a.imageSize,
      patch_size: a.patchSize,
    },
  };
}

/** The text tower's own config.json (transformers CLIPTextModel), taken from a CLIPModel config. */
export function textEncoderConfigJson(clipConfig: Record<string, unknown>): Record<string, unknown> {
  const text = clipConfig['text_config'] as Record<string, unknown>;
  return { ...text, architectures: ['CLIPTextModel'], torch_dtype: 'float16' };
}

/** CLIPImageProcessor settings of the trained model: 64×64 input, pixels scaled to [-1, 1]. */
export function preprocessorConfigJson(imageSize: number): Record<string, unknown> {
  return {
    image_processor_type: 'CLIPImageProcessor',
    do_resize: true,
    size: { shortest_edge: imageSize },
    do_center_crop: true,
    crop_size: { height: imageSize, width: imageSize },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_std: [0.5, 0.5, 0.5],
    do_convert_rgb: true,
    resample: 3,
  };
}

/** CLIPModel with transformers' initialization and access to its logit scale for the loss. */
export class ClipTrainingModel extends ClipModelRoot {
  logitScale(): Tensor {
    return this.p('logit_scale');
  }
  override initParameters(seed = 0): StateDict {
    return clipInitParameters(this, seed);
  }
}

/**
 * Symmetric InfoNCE: logits = exp(min(logit_scale, ln 100)) · cos(image_i, text_j); the loss is the mean of the
 * image→text and text→image cross-entropies with the matching pair as the target.
 */
export function contrastiveLoss(model: ClipTrainingModel, pixels: Tensor, ids: Tensor): Tensor {
  const b = pixels.shape[0]!;
  const img = op.l2Normalize(model.imageFeatures(pixels), 1);
  const txt = op.l2Normalize(model.textFeatures(ids), 1);
  const scale = op.exp(op.minimum(model.logitScale(), MAX_LOGIT_SCALE));
  const logits = op.mul(op.matmul(img, op.transpose(txt, [1, 0])), scale);
  const eye = new Float32Array(b * b);
  for (let i = 0; i < b; i++) eye[i * b + i] = 1;
  const matched = op.sum(op.mul(logits, op.constant(eye, [b, b])), [0, 1]);
  const both = op.add(op.sum(op.logSumExp(logits, 1), [0, 1]), op.sum(op.logSumExp(logits, 0), [0, 1]));
  return op.div(op.sub(both, op.mul(matched, 2)), 2 * b);
}

interface Resolved {
  readonly arch: ClipArchitecture;
  readonly tokenizerCaptions: number;
  readonly vocabSize: number;
  readonly videoFrames: number;
  readonly imageFraction: number;
  readonly evalBatches: number;
  readonly evalBatchSize: number;
  readonly warmupSteps: number;
}

function resolve(s: ClipStageSettings, steps: number): Resolved {
  return {
    arch: s.architecture ?? DEFAULT_CLIP_ARCHITECTURE,
    tokenizerCaptions: s.tokenizerCaptions ?? 20000,
    vocabSize: s.vocabSize ?? 2048,
    videoFrames: s.videoFrames ?? 16,
    imageFraction: s.imageFraction ?? 0.25,
    evalBatches: s.evalBatches ?? 8,
    evalBatchSize: s.evalBatchSize ?? 64,
    warmupSteps: s.warmupSteps ?? Math.min(200, Math.floor(steps / 10)),
  };
}

/** Trains the BPE tokenizer into `dir` (or loads it when `dir` already holds one) and returns it. */
export async function worldTokenizer(dir: string, seed: number, r: Resolved): Promise<CLIPTokenizer> {
  if (!existsSync(join(dir, 'tokenizer.json'))) {
    const captions = worldCaptions(seed, r.tokenizerCaptions, r.imageFraction);
    saveClipTokenizer(dir, trainClipBpe(captions, { vocabSize: r.vocabSize }), {
      modelMaxLength: r.arch.maxPositionEmbeddings,
    });
  }
  return CLIPTokenizer.fromPretrained(dir);
}

/** The training batch of `step`: indices step·B … step·B + B − 1, image mode drawn from the step's RNG. */
function trainingBatch(
  opts: StageOptions,
  r: Resolved,
  tokenizer: CLIPTokenizer,
  step: number,
): Record<string, HostTensor> {
  const b = opts.batch;
  const u = indexedGenerator(opts.seed, PURPOSE_TRAIN, step).uniform(b);
  const indices = Array.from({ length: b }, (_, i) => step * b + i);
  const pairs = worldPairs(
    opts.seed,
    indices,
    Array.from(u, (v) => v < r.imageFraction),
    'train',
    r.arch.imageSize,
    r.videoFrames,
  );
  const s = r.arch.imageSize;
  return {
    pixel_values: hostTensor(pairs.pixels, [b, 3, s, s]),
    input_ids: tokenIds(tokenizer, pairs.captions, r.arch.maxPositionEmbeddings),
  };
}

function evalBatches(seed: number, r: Resolved, split: 'train' | 'heldout'): PairBatch[] {
  const n = r.evalBatchSize;
  // Training-split evaluation pairs come from indices far beyond any training step's.
  const base = split === 'train' ? 1_000_000_000 : 0;
  return Array.from({ length: r.evalBatches }, (_, k) =>
    worldPairs(
      seed,
      Array.from({ length: n }, (_, i) => base + k * n + i),
      new Array<boolean>(n).fill(false),
      split,
      r.arch.imageSize,
      r.videoFrames,
    ),
  );
}

/** Writes the full CLIPModel folder (weights, config, tokenizer, preprocessor config). */
export function exportClipModel(
  dir: string,
  config: Record<string, unknown>,
  weights: StateDict,
  tokenizer: CLIPTokenizer,
): void {
  const module = new ClipModelRoot(parseClipConfig(config));
  exportComponent(dir, { config, stateDict: weights, module, weightsBasename: 'model' });
  saveClipTokenizer(dir, tokenizer.tokenizerJson, { modelMaxLength: tokenizer.modelMaxLength });
  const size = (config['vision_config'] as { image_size: number }).image_size;
  writeJsonAtomic(join(dir, 'preprocessor_config.json'), preprocessorConfigJson(size));
}

/** Writes `<pipelineDir>/text_encoder` (CLIPTextModel, fp16) and `<pipelineDir>/tokenizer`. */
export function exportTextEncoder(
  pipelineDir: string,
  config: Record<string, unknown>,
  weights: StateDict,
  tokenizer: CLIPTokenizer,
): string[] {
  const textConfig = textEncoderConfigJson(config);
  const module = new ClipTextRoot(parseClipConfig(config).textConfig, false);
  const textWeights: StateDict = new Map([...weights].filter(([k]) => k.startsWith('text_model.')));
  const textDir = join(pipelineDir, 'text_encoder');
  const tokDir = join(pipelineDir, 'tokenizer');
  exportComponent(textDir, { config: textConfig, stateDict: textWeights, module, weightsBasename: 'model' });
  saveClipTokenizer(tokDir, tokenizer.tokenizerJson, { modelMaxLength: tokenizer.modelMaxLength });
  return [textDir, tokDir];
}

/** The `kinema train clip` stage; `settings` override the model and data sizes (tests use tiny ones). */
export function createClipStage(settings: ClipStageSettings = {}): StageDefinition {
  return {
    name: 'clip',
    summary: 'BPE tokenizer + tiny CLIPModel (contrastive, on world frames and captions)',
    defaults: { steps: 1500, batch: 64, lr: 1e-3, checkpointEvery: 100 },
    run: (opts) => runClipStage(settings, opts),
  };
}

export const clipStage = createClipStage();

async function runClipStage(s: ClipStageSettings, opts: StageOptions): Promise<StageResult> {
  const r = resolve(s, opts.steps);
  const t0 = performance.now();
  const tokenizer = await worldTokenizer(join(opts.out, 'tokenizer'), opts.seed, r);
  const vocab = tokenizer.vocabulary().size;
  logLine(opts, `clip: tokenizer with ${vocab} tokens in ${join(opts.out, 'tokenizer')}`);
  const config = clipModelConfigJson(r.arch, {
    vocabSize: vocab,
    bosTokenId: tokenizer.bosTokenId,
    eosTokenId: tokenizer.eosTokenId,
    padTokenId: tokenizer.padTokenId,
  });
  const model = new ClipTrainingModel(parseClipConfig(config));
  const { imageSize: size, maxPositionEmbeddings: len } = r.arch;
  const step = await GradStep.create(
    (b) => contrastiveLoss(model, b['pixel_values']!, b['input_ids']!),
    [
      { name: 'pixel_values', shape: [opts.batch, 3, size, size] },
      { name: 'input_ids', shape: [opts.batch, len], dtype: 'int64' },
    ],
    opts.threads === undefined ? {} : { threads: opts.threads },
  );
  logLine(
    opts,
    `clip: ${(model.parameterCount() / 1e6).toFixed(3)} M parameters, batch ${opts.batch}; ready in ` +
      `${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const outcome = await runTraining({
    opts,
    label: 'clip',
    model,
    step,
    batch: prefetching((i) => trainingBatch(opts, r, tokenizer, i)),
    warmupSteps: r.warmupSteps,
    weightDecay: 0.01,
    clipNorm: 1,
    ema: { decay: 0.999, warmup: true },
    extra: {
      stage: 'clip',
      clip_config: config,
      data: {
        batch: opts.batch,
        captions: r.tokenizerCaptions,
        frames: r.videoFrames,
        images: r.imageFraction,
      },
    },
  });
  return finishClipStage(opts, r, config, tokenizer, outcome);
}

async function finishClipStage(
  opts: StageOptions,
  r: Resolved,
  config: Record<string, unknown>,
  tokenizer: CLIPTokenizer,
  outcome: Awaited<ReturnType<typeof runTraining>>,
): Promise<StageResult> {
  const metrics: Record<string, unknown> = {
    parameters: new ClipModelRoot(parseClipConfig(config)).parameterCount(),
  };
  const exported: string[] = [];
  if (outcome.completed) {
    const weights = outcome.finalParams;
    const clipDir = join(opts.out, 'clip_model');
    exportClipModel(clipDir, config, weights, tokenizer);
    exported.push(clipDir);
    const model = await CLIPModel.fromPretrained(
      clipDir,
      opts.threads === undefined ? {} : { threads: opts.threads },
    );
    const heldout = await retrievalAccuracy(model, tokenizer, evalBatches(opts.seed, r, 'heldout'));
    const train = await retrievalAccuracy(model, tokenizer, evalBatches(opts.seed, r, 'train'));
    Object.assign(metrics, {
      tokenizer_vocab_size: tokenizer.vocabulary().size,
      logit_scale_exp: model.logitScale,
      retrieval_batch: r.evalBatchSize,
      heldout_text_to_image_top1: heldout.textToImageTop1,
      heldout_image_to_text_top1: heldout.imageToTextTop1,
      heldout_text_to_image_top5: heldout.textToImageTop5,
      train_text_to_image_top1: train.textToImageTop1,
      eval_pairs: heldout.pairs,
    });
    logLine(
      opts,
      `clip: held-out retrieval top-1 text→image ${(heldout.textToImageTop1 * 100).toFixed(1)} % ` +
        `(image→text ${(heldout.imageToTextTop1 * 100).toFixed(1)} %, chance ${(100 / r.evalBatchSize).toFixed(1)} %); ` +
        `training split ${(train.textToImageTop1 * 100).toFixed(1)} %`,
    );
    if (opts.exportDir) exported.push(...exportTextEncoder(opts.exportDir, config, weights, tokenizer));
  }
  const full = await writeRunReport(
    opts,
    'CLIP contrastive loss (symmetric InfoNCE)',
    outcome.history,
    metrics,
  );
  return {
    completed: outcome.completed,
    step: outcome.result.endStep,
    losses: outcome.history.losses,
    metrics: full,
    exported,
  };
}
