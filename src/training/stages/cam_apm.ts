// `kinema train cam-apm --base models/default --clip runs/clip/clip_model`: StreamingT2V's CAM and APM
// (src/models/streaming/) as adapters on the frozen base UNet. Data: long world scenes (objects keep moving
// and bounce off the walls for as long as the clip lasts, docs/world.md) of 2·F frames; each sample is the
// F-frame chunk at a random offset s ∈ {0, F−O, …} with the scene's first frame as the APM anchor and the chunk's
// first O frames as the CAM's conditioning frames — the layout of inference, where a chunk's first O frames are
// the previous chunk's last O (the release's pairing; its outputs there are discarded). Condition dropout, 5 %
// each: the frames (gate 0), the anchor (the embedding of an all-zero image, the release's unconditional
// image), the caption (the UNet stage's dropout). Loss: MSE against noise or v (the base's prediction type)
// over the chunk. Writes streaming/ (adapters, fp16) and image_encoder/ (the CLIP vision tower the anchor
// embedding comes from) into --export (default <out>/model).
import { cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as op from '../../engine/ops.js';
import type { Tensor } from '../../engine/tensor.js';
import { hostTensor } from '../../engine/runtime.js';
import type { HostTensor } from '../../engine/runtime.js';
import { UNet3DConditionModel } from '../../models/unet3d/unet3d.js';
import { StreamingAdapters, streamingForward } from '../../models/streaming/streaming_unet.js';
import {
  DEFAULT_STREAMING_CONFIG,
  baseFingerprint,
  streamingConfigJson,
} from '../../models/streaming/config.js';
import type { StreamingConfig } from '../../models/streaming/config.js';
import { ClipImageEncoder } from '../../models/clip/image_encoder.js';
import { ClipVisionRoot } from '../../models/clip/vision_model.js';
import { parseClipVisionConfig } from '../../models/clip/config.js';
import type { StateDict } from '../../nn/module.js';
import type { Module } from '../../nn/module.js';
import { exportComponent } from '../export.js';
import { GradStep } from '../trainer.js';
import { ParameterSubset } from '../parameter_subset.js';
import {
  indexedGenerator,
  logLine,
  prefetching,
  runTraining,
  secondsPerStep,
  stageResult,
  writeRunReport,
} from './common.js';
import type { StageDefinition, StageOptions, StageResult } from './common.js';
import { UnetTrainingData } from './unet.js';
import { DEFAULT_MODEL_DIR, resolveUnetSettings } from './unet_settings.js';
import { baseSchedule } from './lora.js';
import { worldSample, toFloatCHW } from '../data/world.js';
import type { ClipSource } from './unet_settings.js';
import { KinemaError } from '../../errors.js';

/** Probability of dropping each condition (frames, anchor) in a sample (the 5 %). */
export const CONDITION_DROPOUT = 0.05;
/** `indexedGenerator` purpose of the chunk offsets and condition dropout. */
const RNG_PURPOSE = 11;
export const DEFAULT_CLIP_MODEL = 'runs/clip/clip_model';

export const camApmStage: StageDefinition = {
  name: 'cam-apm',
  summary: 'StreamingT2V CAM + APM adapters on a frozen pipeline UNet (--base), anchor from a CLIP (--clip)',
  defaults: { steps: 400, batch: 2, lr: 1e-4, checkpointEvery: 50 },
  run: runCamApmStage,
};

/** World scenes of `sceneFrames`, served as the chunk at a per-index offset; the anchor (frame 0) is kept. */
export function longWorldChunks(
  seed: number,
  sceneFrames: number,
  offsets: readonly number[],
): { source: ClipSource; anchor: (index: number) => Uint8Array } {
  const anchors = new Map<number, Uint8Array>();
  const source: ClipSource = (index, q) => {
    const s = worldSample(seed, index, {
      width: q.width,
      height: q.height,
      frames: sceneFrames,
      split: 'train',
    });
    const at =
      offsets[Number(indexedGenerator(seed, RNG_PURPOSE, index).uniform(1)[0]! * offsets.length) | 0]!;
    if (anchors.size > 4096) anchors.clear();
    anchors.set(index, s.frames[0]!);
    return { caption: s.caption, frames: s.frames.slice(at, at + q.frames) };
  };
  const anchor = (index: number): Uint8Array => {
    const a = anchors.get(index);
    if (!a) throw new KinemaError('TRAIN_BAD_SETTINGS', `cam-apm: no anchor for sample ${index}`);
    return a;
  };
  return { source, anchor };
}

async function runCamApmStage(opts: StageOptions): Promise<StageResult> {
  const base = opts.base ?? DEFAULT_MODEL_DIR;
  const clipDir = opts.clipModel ?? DEFAULT_CLIP_MODEL;
  for (const c of ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler'])
    if (!existsSync(join(base, c)))
      throw new KinemaError('TRAIN_BAD_SETTINGS', `cam-apm: --base ${base} has no ${c}/ folder`);
  if (!existsSync(join(clipDir, 'config.json')))
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `cam-apm: --clip ${clipDir} is not a CLIPModel folder (train one: kinema train clip --out runs/clip)`,
    );
  const frames = opts.frames ?? 16;
  const config: StreamingConfig = { ...DEFAULT_STREAMING_CONFIG, condFrames: Math.floor(frames / 2) };
  const o = config.condFrames;
  const offsets = Array.from({ length: Math.floor(frames / (frames - o)) + 1 }, (_, i) => i * (frames - o));
  const sceneFrames = offsets[offsets.length - 1]! + frames;
  const r = resolveUnetSettings({ frames, images: 0, ...(await baseSchedule(base)) }, opts.batch, opts.seed);
  const world = longWorldChunks(r.seed, sceneFrames, offsets);
  const data = await UnetTrainingData.load(base, world.source, r, opts.threads);
  const baseUnet = await UNet3DConditionModel.fromPretrained(join(base, 'unet'));
  const encoder = await ClipImageEncoder.fromClipModel(clipDir);
  const adaptersConfig = { ...config, imageEmbedDim: encoder.embedDim };
  const adapters = new StreamingAdapters(baseUnet.config, adaptersConfig);
  const init = adapters.initFrom(baseUnet.stateDict, opts.seed);
  const view = new ParameterSubset(adapters, (k) => init.has(k));
  const [b, c, f, h, w] = data.latentShape;
  const [H, W] = [r.height, r.width];
  const ctx = [b, data.tokens, data.textHidden];
  const specs = [
    { name: 'noisy', shape: [b, c, f, h, w] },
    { name: 'target', shape: [b, c, f, h, w] },
    { name: 'timestep', shape: [b] },
    { name: 'context', shape: ctx },
    { name: 'cond', shape: [b * o, 3, H, W] },
    { name: 'image', shape: [b, encoder.embedDim] },
    { name: 'gate', shape: [b] },
    { name: 'fps', shape: [b] },
  ];
  const t0 = performance.now();
  const step = await GradStep.create(
    (x) => {
      const eps = streamingForward(baseUnet, adapters, x['noisy']!, x['timestep']!, x['context']!, {
        condFrames: x['cond']!,
        imageEmbeds: x['image']!,
        gate: x['gate']!,
        fps: x['fps']!,
      });
      const d = op.sub(eps, x['target']!);
      return op.mean(op.mul(d, d), [0, 1, 2, 3, 4]) as Tensor;
    },
    specs,
    {
      ...(opts.threads && { threads: opts.threads }),
      frozen: baseUnet.stateDict,
      trainable: [...init.keys()],
    },
  );
  logLine(
    opts,
    `cam-apm: ${(view.parameterCount() / 1e6).toFixed(2)} M trainable parameters (CAM copy, ` +
      `${adapters.downMergers.length + 1} mergers, ${adapters.apmLayers.length} APM layers) on a frozen ` +
      `${(baseUnet.parameterCount() / 1e6).toFixed(2)} M UNet; chunks of ${f} frames (${o} conditioning) from ` +
      `${sceneFrames}-frame scenes at ${W}×${H}; compiled in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const zeroImage = await encoder.embed([new Uint8Array(W * H * 3).fill(128)]);
  const batch = async (i: number): Promise<Record<string, HostTensor>> => {
    const { x0, context, timesteps, rng } = await data.cleanClips(i);
    const { noisy, target } = data.noisyAndTarget(x0, rng.normal(x0.length), timesteps);
    const drop = indexedGenerator(r.seed, RNG_PURPOSE + 1, i).uniform(2 * b);
    const cond = new Float32Array(b * o * 3 * H * W);
    const gate = new Float32Array(b);
    const anchors: Uint8Array[] = [];
    for (let j = 0; j < b; j++) {
      const clip = await world.source(i * b + j, { width: W, height: H, frames: f, imageMode: false });
      cond.set(toFloatCHW(clip.frames.slice(0, o), W, H), j * o * 3 * H * W);
      gate[j] = drop[j]! < CONDITION_DROPOUT ? 0 : 1;
      anchors.push(world.anchor(i * b + j));
    }
    const image = await encoder.embed(anchors);
    for (let j = 0; j < b; j++)
      if (drop[b + j]! < CONDITION_DROPOUT)
        image.set(zeroImage.subarray(0, encoder.embedDim), j * encoder.embedDim);
    return {
      noisy: hostTensor(noisy, [b, c, f, h, w]),
      target: hostTensor(target, [b, c, f, h, w]),
      timestep: hostTensor(Float32Array.from(timesteps), [b]),
      context: hostTensor(context, ctx),
      cond: hostTensor(cond, [b * o, 3, H, W]),
      image: hostTensor(image, [b, encoder.embedDim]),
      gate: hostTensor(gate, [b]),
      fps: hostTensor(new Float32Array(b).fill(data.fps), [b]),
    };
  };
  const outcome = await runTraining({
    opts,
    label: 'cam-apm',
    model: view,
    step,
    batch: prefetching(batch),
    startWeights: () => init,
    warmupSteps: Math.min(50, Math.floor(opts.steps / 10)),
    weightDecay: 0,
    clipNorm: 1,
    extra: { stage: 'cam-apm', base, clip: clipDir, frames, scene_frames: sceneFrames },
  });
  const exported: string[] = [];
  if (outcome.completed) {
    const dir = opts.exportDir ?? join(opts.out, 'model');
    writeStreamingAdapters(dir, {
      clipDir,
      encoder,
      config: adaptersConfig,
      module: view,
      weights: outcome.finalParams,
      baseUnetWeights: readFileSync(join(base, 'unet', 'diffusion_pytorch_model.safetensors')),
    });
    exported.push(join(dir, 'streaming'), join(dir, 'image_encoder'));
    logLine(opts, `cam-apm: wrote ${dir}/streaming and ${dir}/image_encoder`);
  }
  const metrics = await writeRunReport(opts, 'StreamingT2V CAM + APM: chunk loss', outcome.history, {
    trainable_parameters: view.parameterCount(),
    cond_frames: o,
    scene_frames: sceneFrames,
    seconds_per_step: secondsPerStep(outcome.history),
  });
  return stageResult(outcome, metrics, exported);
}

/**
 * Writes `dir/streaming/` (config.json with the base's fingerprint + the adapters' fp16 weights) and
 * `dir/image_encoder/` (the CLIP vision tower with its projection and preprocessing), each swapped into place
 * whole (exportComponent), so a killed run leaves either the old folder or the new one.
 */
export function writeStreamingAdapters(
  dir: string,
  o: {
    clipDir: string;
    encoder: ClipImageEncoder;
    config: StreamingConfig;
    module: Module;
    weights: StateDict;
    baseUnetWeights: Uint8Array;
  },
): void {
  exportComponent(join(dir, 'streaming'), {
    config: { ...streamingConfigJson(o.config), base_unet_sha256: baseFingerprint(o.baseUnetWeights) },
    stateDict: o.weights,
    module: o.module,
    weightsBasename: 'diffusion_pytorch_model',
  });
  const vision = o.encoder.vision;
  if (!vision)
    throw new KinemaError('TRAIN_BAD_SETTINGS', 'cam-apm: the anchor encoder has no weights to export');
  const imageDir = join(dir, 'image_encoder');
  mkdirSync(imageDir, { recursive: true });
  cpSync(join(o.clipDir, 'preprocessor_config.json'), join(imageDir, 'preprocessor_config.json'));
  exportComponent(imageDir, {
    config: vision.config,
    stateDict: vision.stateDict,
    module: new ClipVisionRoot(parseClipVisionConfig(vision.config), true),
    weightsBasename: 'model',
  });
}
