// `kinema train dsdn --base models/default [--rank 4] --out runs/dsdn`: DSDN's trainable parts on a frozen
// pipeline UNet (src/models/dsdn/): the content and motion increment units (LoRA, one per stream) and the
// interaction blocks. Data: world clips, their VAE latents z split by the motion decomposer into content frames
// (z itself, each frame an image) and motion features; both streams are noised at the same timestep (the
// paper's shared schedule), the content frames with one noise image shared by all frames of a clip (what the
// pipeline samples from, docs/dsdn.md), the motion features with independent noise; the loss is the sum of the
// two streams' mean squared errors against their targets (noise or v, the base's prediction type). Writes a
// pipeline folder (the base's components + dsdn/) to --export, or to <out>/model.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as op from '../../engine/ops.js';
import type { Tensor } from '../../engine/tensor.js';
import { hostTensor } from '../../engine/runtime.js';
import type { HostTensor } from '../../engine/runtime.js';
import { UNet3DConditionModel } from '../../models/unet3d/unet3d.js';
import {
  DEFAULT_INTERACTION_SITES,
  DualStreamUNet,
  dualStreamConfigJson,
} from '../../models/dsdn/dual_stream_unet.js';
import type { DualStreamConfig } from '../../models/dsdn/dual_stream_unet.js';
import { decomposeMotion, motionRms } from '../../models/dsdn/motion.js';
import type { LatentShape } from '../../models/dsdn/motion.js';
import { attachLoRA, DEFAULT_UNET_LORA_TARGETS } from '../../nn/lora.js';
import type { StateDict } from '../../nn/module.js';
import { GradStep } from '../trainer.js';
import { ParameterSubset } from '../parameter_subset.js';
import { exportComponent, swapFolder, writeJsonAtomic } from '../export.js';
import { logLine, prefetching, runTraining, writeRunReport, secondsPerStep, stageResult } from './common.js';
import type { StageDefinition, StageOptions, StageResult } from './common.js';
import { UnetTrainingData } from './unet.js';
import { DEFAULT_MODEL_DIR, resolveUnetSettings } from './unet_settings.js';
import { baseSchedule, worldSubsetSource } from './lora.js';
import { KinemaError } from '../../errors.js';

/** Batches whose latents set σ_m (the motion features' scale) before training. */
const SCALE_BATCHES = 4;
/** γ of the motion combiner written to the config (a sampling-time choice; docs/dsdn.md). */
export const DEFAULT_COMBINER_GAMMA = 0.8;
/** Components copied from the base into the DSDN pipeline folder. */
const BASE_COMPONENTS = [
  'tokenizer',
  'text_encoder',
  'vae',
  'scheduler',
  'unet',
  'model_index.json',
] as const;

export const dsdnStage: StageDefinition = {
  name: 'dsdn',
  summary: 'DSDN dual stream: content/motion LoRA + interaction on a frozen pipeline UNet (--base)',
  defaults: { steps: 400, batch: 2, lr: 1e-3, checkpointEvery: 50 },
  run: runDsdnStage,
};

/** Content latents with one noise image per clip (shared by its frames): [B, C, F, h, w] from [B, C, h, w]. */
export function frameSharedNoise(perClip: Float32Array, shape: LatentShape): Float32Array {
  const [b, c, f, h, w] = shape;
  const hw = h * w;
  const out = new Float32Array(b * c * f * hw);
  for (let bc = 0; bc < b * c; bc++)
    for (let fi = 0; fi < f; fi++) out.set(perClip.subarray(bc * hw, (bc + 1) * hw), (bc * f + fi) * hw);
  return out;
}

async function runDsdnStage(opts: StageOptions): Promise<StageResult> {
  const base = opts.base ?? DEFAULT_MODEL_DIR;
  for (const c of BASE_COMPONENTS)
    if (!existsSync(join(base, c)))
      throw new KinemaError('TRAIN_BAD_SETTINGS', `dsdn: --base ${base} has no ${c}/ folder`);
  const rank = opts.loraRank ?? 4;
  const alpha = opts.loraAlpha ?? rank;
  const targets = opts.loraTargets ?? DEFAULT_UNET_LORA_TARGETS;
  const frames = opts.frames ?? 8;
  if (frames < 2)
    throw new KinemaError('TRAIN_BAD_SETTINGS', 'dsdn: --frames must be ≥ 2 (motion needs two frames)');
  const r = resolveUnetSettings({ frames, images: 0, ...(await baseSchedule(base)) }, opts.batch, opts.seed);
  const data = await UnetTrainingData.load(base, worldSubsetSource(r.seed), r, opts.threads);
  const baseUnet = await UNet3DConditionModel.fromPretrained(join(base, 'unet'));
  const shape = data.latentShape as LatentShape;

  // σ_m from the first batches' latents (deterministic: a function of the seed).
  let sq = 0;
  for (let i = 0; i < SCALE_BATCHES; i++) sq += motionRms((await data.cleanClips(i)).x0, shape) ** 2;
  const motionScale = Math.round(Math.sqrt(sq / SCALE_BATCHES) * 1e4) / 1e4;
  const unit = { rank, alpha, targets: [...targets] };
  const config: DualStreamConfig = {
    motionScale,
    combinerGamma: DEFAULT_COMBINER_GAMMA,
    interactionSites: [...DEFAULT_INTERACTION_SITES],
    interactionHeads: 4,
    contentLoRA: unit,
    motionLoRA: unit,
  };
  const model = new DualStreamUNet(baseUnet.config, config);
  const content = attachLoRA(model.content, { rank, alpha, targets, seed: opts.seed });
  const motion = attachLoRA(model.motion, { rank, alpha, targets, seed: opts.seed + 7919 });
  const init: StateDict = new Map([...content.init, ...motion.init]);
  model.interaction.forEach((block, i) => {
    for (const [k, v] of block.initParameters(opts.seed + 104729 + i)) init.set(`interaction.${i}.${k}`, v);
  });
  const frozen = DualStreamUNet.stateDictFrom(baseUnet.stateDict, new Map());
  const view = new ParameterSubset(model, (k) => init.has(k));
  const [b, c, f, h, w] = shape;
  const ctx = [b, data.tokens, data.textHidden];
  const specs = [
    { name: 'content_noisy', shape: [...shape] },
    { name: 'content_target', shape: [...shape] },
    { name: 'motion_noisy', shape: [...shape] },
    { name: 'motion_target', shape: [...shape] },
    { name: 'timestep', shape: [b] },
    { name: 'context', shape: ctx },
    { name: 'fps', shape: [b] },
  ];
  const mse = (a: Tensor, t: Tensor): Tensor => {
    const d = op.sub(a, t);
    return op.mean(op.mul(d, d), [0, 1, 2, 3, 4]);
  };
  const t0 = performance.now();
  const step = await GradStep.create(
    (x) => {
      const [co, mo] = model.forward(x['content_noisy']!, x['motion_noisy']!, x['timestep']!, x['context']!, {
        fps: x['fps']!,
      });
      return op.add(mse(co, x['content_target']!), mse(mo, x['motion_target']!));
    },
    specs,
    { ...(opts.threads && { threads: opts.threads }), frozen, trainable: [...init.keys()] },
  );
  logLine(
    opts,
    `dsdn: σ_m ${motionScale}, LoRA rank ${rank} on ${content.branches.size} + ${motion.branches.size} layers, ` +
      `${model.interaction.length} interaction blocks; ${(view.parameterCount() / 1e3).toFixed(1)} k trainable ` +
      `parameters on a frozen ${(baseUnet.parameterCount() / 1e6).toFixed(2)} M UNet (both streams); ` +
      `${f} frames of ${w * 4}×${h * 4}; program compiled in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const batch = async (i: number): Promise<Record<string, HostTensor>> => {
    const { x0, context, timesteps, rng } = await data.cleanClips(i);
    const m0 = decomposeMotion(x0, shape, motionScale);
    const cn = frameSharedNoise(rng.normal(b * c * h * w), shape);
    const mn = rng.normal(x0.length);
    const cs = data.noisyAndTarget(x0, cn, timesteps);
    const ms = data.noisyAndTarget(m0, mn, timesteps);
    return {
      content_noisy: hostTensor(cs.noisy, [...shape]),
      content_target: hostTensor(cs.target, [...shape]),
      motion_noisy: hostTensor(ms.noisy, [...shape]),
      motion_target: hostTensor(ms.target, [...shape]),
      timestep: hostTensor(Float32Array.from(timesteps), [b]),
      context: hostTensor(context, ctx),
      fps: hostTensor(new Float32Array(b).fill(data.fps), [b]),
    };
  };
  const setup = { stage: 'dsdn', base, frames, dsdn_config: dualStreamConfigJson(config) };
  const outcome = await runTraining({
    opts,
    label: 'dsdn',
    model: view,
    step,
    batch: prefetching(batch),
    startWeights: () => init,
    warmupSteps: Math.min(50, Math.floor(opts.steps / 10)),
    weightDecay: 0,
    clipNorm: 1,
    extra: setup,
  });
  const exported: string[] = [];
  if (outcome.completed) {
    const dir = opts.exportDir ?? join(opts.out, 'model');
    writeDualStreamFolder(dir, base, config, view, outcome.finalParams);
    exported.push(dir);
    logLine(opts, `dsdn: wrote the pipeline folder ${dir}`);
  }
  const metrics = await writeRunReport(opts, 'DSDN: content + motion stream loss', outcome.history, {
    rank,
    alpha,
    motion_scale: motionScale,
    trainable_parameters: view.parameterCount(),
    seconds_per_step: secondsPerStep(outcome.history),
  });
  return stageResult(outcome, metrics, exported);
}

/**
 * A DSDN pipeline folder at `dir`: the base's components, `dsdn/` (config.json + the increment units' and
 * interaction blocks' weights, fp16) and a model_index.json naming DualStreamPipeline. Built in a hidden
 * sibling folder and renamed into place, so a killed run never leaves half a folder.
 */
export function writeDualStreamFolder(
  dir: string,
  base: string,
  config: DualStreamConfig,
  trainable: ParameterSubset,
  weights: StateDict,
): void {
  mkdirSync(dirname(dir), { recursive: true });
  const temp = join(dirname(dir), `.${randomBytes(6).toString('hex')}.dsdn.partial`);
  mkdirSync(temp);
  try {
    for (const c of BASE_COMPONENTS.slice(0, -1)) cpSync(join(base, c), join(temp, c), { recursive: true });
    exportComponent(join(temp, 'dsdn'), {
      config: dualStreamConfigJson(config),
      stateDict: weights,
      module: trainable,
      weightsBasename: 'diffusion_pytorch_model',
    });
    const index = JSON.parse(readFileSync(join(base, 'model_index.json'), 'utf8')) as Record<string, unknown>;
    writeJsonAtomic(join(temp, 'model_index.json'), dualStreamModelIndex(index));
    swapFolder(temp, dir);
  } catch (err) {
    rmSync(temp, { recursive: true, force: true });
    throw err;
  }
}

/** The base's model_index.json as a DualStreamPipeline's: its components plus `dsdn`. */
export function dualStreamModelIndex(baseIndex: Record<string, unknown>): Record<string, unknown> {
  return { ...baseIndex, _class_name: 'DualStreamPipeline', dsdn: ['kinema', 'DualStreamModel'] };
}
