// `kinema train lora --base models/default --rank 4 [--targets to_q,to_v] --out runs/lora-x`: a LoRA adapter
// (src/nn/lora.ts) on a pipeline's UNet, trained with the UNet stage's loss and data builder while every base
// weight stays frozen (fed to the program as fixed values, no gradient). Data: the procedural world's training
// split, optionally only scenes with one kind of background (`--world-background stripes`: a style adapter),
// or a folder of the user's own captioned clips (`--data DIR`). The noise schedule and prediction type are the
// base's (its scheduler folder). Only the adapter is saved: `<out>/lora.safetensors` (diffusers/PEFT layout,
// fp16), which `kinema generate --lora` and `kinema lora merge` read.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UNet3DConditionModel } from '../../models/unet3d/unet3d.js';
import { attachLoRA, DEFAULT_UNET_LORA_TARGETS } from '../../nn/lora.js';
import { readJsonLenient } from '../../io/json.js';
import { saveLoRAFile } from '../../io/lora_file.js';
import type { AdapterModule } from '../../io/lora_file.js';
import { worldSample } from '../data/world.js';
import type { Background } from '../data/world.js';
import { clipFolderSource, readClipFolder } from '../data/clip_folder.js';
import { ParameterSubset } from '../parameter_subset.js';
import { logLine, prefetching, runTraining, writeRunReport, secondsPerStep, stageResult } from './common.js';
import type { StageDefinition, StageOptions, StageResult } from './common.js';
import { UnetTrainingData, unetGradStep } from './unet.js';
import { DEFAULT_MODEL_DIR, resolveUnetSettings } from './unet_settings.js';
import type { ClipSource } from './unet_settings.js';
import { KinemaError } from '../../errors.js';

export const WORLD_BACKGROUNDS = ['solid', 'gradient', 'stripes', 'checker'] as const;
export type WorldBackground = Background['kind'];

/** Tries per example when the world is filtered by background (the rarest kind is ~15 % of scenes). */
const SUBSET_TRIES = 512;

/** The world's training split, only scenes whose background is `kind` when given (deterministic by index). */
export function worldSubsetSource(seed: number, kind?: WorldBackground): ClipSource {
  return (index, q) => {
    for (let j = 0; j < (kind ? SUBSET_TRIES : 1); j++) {
      const s = worldSample(seed, kind ? index * SUBSET_TRIES + j : index, {
        width: q.width,
        height: q.height,
        frames: q.frames,
        split: 'train',
        imageMode: q.imageMode,
      });
      if (!kind || s.scene.background.kind === kind) return { caption: s.caption, frames: s.frames };
    }
    throw new KinemaError('TRAIN_BAD_SETTINGS', `lora: no ${kind} scene in ${SUBSET_TRIES} draws`);
  };
}

/** The base's training noise schedule, as the UNet stage can reproduce it (its scaled-linear betas). */
export async function baseSchedule(
  base: string,
): Promise<{ predictionType: 'epsilon' | 'v_prediction'; zeroTerminalSnr: boolean }> {
  const cfg = (await readJsonLenient(join(base, 'scheduler', 'scheduler_config.json'))) as Record<
    string,
    unknown
  >;
  const prediction = cfg['prediction_type'] ?? 'epsilon';
  if (prediction !== 'epsilon' && prediction !== 'v_prediction')
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `--base ${base}: prediction_type '${String(prediction)}' is not trainable here`,
    );
  const scaled =
    cfg['beta_schedule'] === 'scaled_linear' && cfg['beta_start'] === 0.00085 && cfg['beta_end'] === 0.012;
  if (!scaled || (cfg['trained_betas'] !== null && cfg['trained_betas'] !== undefined))
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `--base ${base}: only the scaled-linear 0.00085–0.012 betas of the UNet stage are supported`,
    );
  return { predictionType: prediction, zeroTerminalSnr: cfg['rescale_betas_zero_snr'] === true };
}

export const loraStage: StageDefinition = {
  name: 'lora',
  summary: 'a LoRA adapter on a pipeline UNet (--base), base frozen; world subset or --data clips',
  defaults: { steps: 600, batch: 2, lr: 1e-3, checkpointEvery: 50 },
  run: runLoraStage,
};

async function runLoraStage(opts: StageOptions): Promise<StageResult> {
  const base = opts.base ?? DEFAULT_MODEL_DIR;
  for (const c of ['unet', 'scheduler'])
    if (!existsSync(join(base, c)))
      throw new KinemaError('TRAIN_BAD_SETTINGS', `--base ${base} has no ${c}/ folder`);
  const rank = opts.loraRank ?? 4;
  const alpha = opts.loraAlpha ?? rank;
  const targets = opts.loraTargets ?? DEFAULT_UNET_LORA_TARGETS;
  const frames = opts.frames ?? 8;
  const userClips = opts.dataDir
    ? await readClipFolder(opts.dataDir, { width: 64, height: 64, frames })
    : null;
  const r = resolveUnetSettings(
    { frames, images: userClips ? 0 : 2, ...(await baseSchedule(base)) },
    opts.batch,
    opts.seed,
  );
  const source = userClips ? clipFolderSource(userClips) : worldSubsetSource(r.seed, opts.worldBackground);
  const data = await UnetTrainingData.load(base, source, r, opts.threads);
  const unet = await UNet3DConditionModel.fromPretrained(join(base, 'unet'));
  const frozen = unet.stateDict;
  const { branches, init } = attachLoRA(unet, { rank, alpha, targets, seed: opts.seed });
  const trainable = [...init.keys()];
  const t0 = performance.now();
  const step = await unetGradStep(unet, data, opts.threads, { frozen, trainable });
  const view = new ParameterSubset(unet, (k) => init.has(k));
  logLine(
    opts,
    `lora: rank ${rank}, α ${alpha}, ${branches.size} layers (${targets.join(', ')}), ` +
      `${(view.parameterCount() / 1e3).toFixed(1)} k trainable parameters on a frozen ` +
      `${((unet.parameterCount() - view.parameterCount()) / 1e6).toFixed(2)} M UNet; data: ` +
      (userClips
        ? `${userClips.length} clips from ${opts.dataDir}`
        : `world${opts.worldBackground ? ` (${opts.worldBackground} backgrounds only)` : ''}`) +
      `; program compiled in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const setup = {
    rank,
    alpha,
    targets: [...targets],
    base,
    frames,
    data: opts.dataDir ?? `world:${opts.worldBackground ?? 'all'}`,
  };
  const outcome = await runTraining({
    opts,
    label: 'lora',
    model: view,
    step,
    batch: prefetching((i) => data.batch(i)),
    startWeights: () => init,
    warmupSteps: Math.min(50, Math.floor(opts.steps / 10)),
    weightDecay: 0,
    clipNorm: 1,
    extra: { stage: 'lora', lora_config: setup },
  });
  const exported: string[] = [];
  if (outcome.completed) {
    const modules: AdapterModule[] = [...branches].map(([hostPath, b]) => {
      const a = `${b.path}.lora_A.weight`;
      const up = `${b.path}.lora_B.weight`;
      const shapes = view.namedParameters();
      return {
        component: 'unet',
        hostPath,
        down: { data: outcome.finalParams.get(a)!, shape: shapes.get(a)!.shape },
        up: { data: outcome.finalParams.get(up)!, shape: shapes.get(up)!.shape },
      };
    });
    const file = join(opts.out, 'lora.safetensors');
    saveLoRAFile(file, modules, { kinema_lora: JSON.stringify(setup) });
    exported.push(file);
  }
  const metrics = await writeRunReport(opts, 'LoRA: UNet loss with the adapter', outcome.history, {
    rank,
    alpha,
    trainable_parameters: view.parameterCount(),
    seconds_per_step: secondsPerStep(outcome.history),
  });
  return stageResult(outcome, metrics, exported);
}
