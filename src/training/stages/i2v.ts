// `kinema train i2v --base models/default`: VideoCrafter1's image-to-video conditioning as an adapter on the
// frozen base UNet (src/models/i2v/image_adapter.ts): the resampler and the decoupled image attention's
// to_k_ip/to_v_ip. Data: world clips with their captions; the conditioning image is the clip's first frame,
// its tokens from the folder's frozen image_encoder/ (the world CLIP's vision tower shipped for StreamingT2V);
// 10 % of samples get the all-zero image instead (the release's unconditional image, for guidance). Loss: MSE
// against noise or v (the base's prediction type) over the clip. Writes image_adapter/ (config.json with the
// base's fingerprint, fp16 weights) into --export (default <out>/model).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as op from '../../engine/ops.js';
import type { Tensor } from '../../engine/tensor.js';
import { hostTensor } from '../../engine/runtime.js';
import type { HostTensor } from '../../engine/runtime.js';
import { UNet3DConditionModel } from '../../models/unet3d/unet3d.js';
import {
  ImageAdapter,
  defaultImageAdapterConfig,
  imageAdapterConfigJson,
} from '../../models/i2v/image_adapter.js';
import { ClipImageEncoder } from '../../models/clip/image_encoder.js';
import { baseFingerprint } from '../../models/streaming/config.js';
import { GradStep } from '../trainer.js';
import { ParameterSubset } from '../parameter_subset.js';
import { exportComponent } from '../export.js';
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
import { UnetTrainingData, worldSource } from './unet.js';
import { DEFAULT_MODEL_DIR, resolveUnetSettings } from './unet_settings.js';
import { baseSchedule } from './lora.js';
import { KinemaError } from '../../errors.js';

/** Share of samples conditioned on the all-zero image (the unconditional image of guidance). */
export const IMAGE_DROPOUT = 0.1;
const RNG_PURPOSE = 13;

export const i2vStage: StageDefinition = {
  name: 'i2v',
  summary:
    'VideoCrafter1 image-to-video adapter (resampler + image attention) on a frozen pipeline UNet (--base)',
  defaults: { steps: 600, batch: 2, lr: 3e-4, checkpointEvery: 50 },
  run: runI2vStage,
};

async function runI2vStage(opts: StageOptions): Promise<StageResult> {
  const base = opts.base ?? DEFAULT_MODEL_DIR;
  for (const c of ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler', 'image_encoder'])
    if (!existsSync(join(base, c)))
      throw new KinemaError(
        'TRAIN_BAD_SETTINGS',
        `i2v: --base ${base} has no ${c}/ folder${c === 'image_encoder' ? ' (kinema train cam-apm writes one)' : ''}`,
      );
  const frames = opts.frames ?? 16;
  const r = resolveUnetSettings({ frames, images: 0, ...(await baseSchedule(base)) }, opts.batch, opts.seed);
  const source = worldSource(r.seed);
  const data = await UnetTrainingData.load(base, source, r, opts.threads);
  const baseUnet = await UNet3DConditionModel.fromPretrained(join(base, 'unet'));
  const encoder = await ClipImageEncoder.fromFolder(join(base, 'image_encoder'));
  const [W, H] = [r.width, r.height];
  const grey = await encoder.tokens([new Uint8Array(W * H * 3).fill(128)], W, H);
  const config = defaultImageAdapterConfig(baseUnet.config, grey.width);
  const adapter = new ImageAdapter(baseUnet.config, config);
  const init = adapter.initParameters(opts.seed);
  const view = new ParameterSubset(adapter, (k) => init.has(k));
  const [b, c, f, h, w] = data.latentShape;
  const ctx = [b, data.tokens, data.textHidden];
  const specs = [
    { name: 'noisy', shape: [b, c, f, h, w] },
    { name: 'target', shape: [b, c, f, h, w] },
    { name: 'timestep', shape: [b] },
    { name: 'context', shape: ctx },
    { name: 'image_tokens', shape: [b, grey.tokens, grey.width] },
    { name: 'image_scale', shape: [b] },
    { name: 'fps', shape: [b] },
  ];
  const t0 = performance.now();
  const step = await GradStep.create(
    (x) => {
      const hook = adapter.conditioning(baseUnet, x['image_tokens']!, x['image_scale']!);
      const eps = baseUnet.forward(x['noisy']!, x['timestep']!, x['context']!, { fps: x['fps']!, ...hook });
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
    `i2v: ${(view.parameterCount() / 1e3).toFixed(1)} k trainable parameters (resampler, ${adapter.ip.length} image ` +
      `attentions) on a frozen ${(baseUnet.parameterCount() / 1e6).toFixed(2)} M UNet; ${grey.tokens} image tokens ` +
      `→ ${config.resampler.numQueries}; ${f} frames of ${W}×${H}; compiled in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const batch = async (i: number): Promise<Record<string, HostTensor>> => {
    const { x0, context, timesteps, rng } = await data.cleanClips(i);
    const { noisy, target } = data.noisyAndTarget(x0, rng.normal(x0.length), timesteps);
    const drop = indexedGenerator(r.seed, RNG_PURPOSE, i).uniform(b);
    const images: Uint8Array[] = [];
    for (let j = 0; j < b; j++) {
      const clip = await source(i * b + j, { width: W, height: H, frames: f, imageMode: false });
      images.push(drop[j]! < IMAGE_DROPOUT ? new Uint8Array(W * H * 3).fill(128) : clip.frames[0]!);
    }
    const t = await encoder.tokens(images, W, H);
    return {
      noisy: hostTensor(noisy, [b, c, f, h, w]),
      target: hostTensor(target, [b, c, f, h, w]),
      timestep: hostTensor(Float32Array.from(timesteps), [b]),
      context: hostTensor(context, ctx),
      image_tokens: hostTensor(t.data, [b, t.tokens, t.width]),
      image_scale: hostTensor(new Float32Array(b).fill(1), [b]),
      fps: hostTensor(new Float32Array(b).fill(data.fps), [b]),
    };
  };
  const outcome = await runTraining({
    opts,
    label: 'i2v',
    model: view,
    step,
    batch: prefetching(batch),
    startWeights: () => init,
    warmupSteps: Math.min(50, Math.floor(opts.steps / 10)),
    weightDecay: 0,
    clipNorm: 1,
    extra: { stage: 'i2v', base, frames },
  });
  const exported: string[] = [];
  if (outcome.completed) {
    const dir = join(opts.exportDir ?? join(opts.out, 'model'), 'image_adapter');
    const sha = baseFingerprint(readFileSync(join(base, 'unet', 'diffusion_pytorch_model.safetensors')));
    exportComponent(dir, {
      config: { ...imageAdapterConfigJson(config), base_unet_sha256: sha },
      stateDict: outcome.finalParams,
      module: view,
      weightsBasename: 'diffusion_pytorch_model',
    });
    exported.push(dir);
    logLine(opts, `i2v: wrote ${dir}`);
  }
  const metrics = await writeRunReport(opts, 'Image-to-video adapter: clip loss', outcome.history, {
    trainable_parameters: view.parameterCount(),
    image_tokens: grey.tokens,
    seconds_per_step: secondsPerStep(outcome.history),
  });
  return stageResult(outcome, metrics, exported);
}
