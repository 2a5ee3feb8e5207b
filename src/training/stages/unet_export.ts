// What a UNet run is trained against and what it writes: fingerprints of the frozen components (tokenizer,
// text encoder, VAE) checked at --init and at export, starting weights from a pipeline folder, and the export
// of the trained UNet (and fine-tuned text encoder) into a pipeline folder.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ClipTextRoot } from '../../models/clip/text_model.js';
import { parseClipTextConfig } from '../../models/clip/config.js';
import { UNet3DConditionModel } from '../../models/unet3d/unet3d.js';
import { findWeightsFile, loadStateDict, readConfig } from '../../io/model_folder.js';
import type { StateDict } from '../../nn/module.js';
import { loadLatestCheckpoint } from '../checkpoint.js';
import { exportComponent, writeJsonAtomic } from '../export.js';
import { withoutSwitchableKeys } from './common.js';
import type { TrainPrediction } from './common.js';
import { DEFAULT_MODEL_INDEX, DEFAULT_SCHEDULER_CONFIG, noiseShiftedBetas } from './unet_settings.js';
import { TEXT_ENCODER_PREFIX, splitJointWeights } from './unet_text.js';
import { KinemaError } from '../../errors.js';

/** The frozen components the UNet is trained against. */
const CONDITIONING_COMPONENTS = ['tokenizer', 'text_encoder', 'vae'] as const;

const TOKENIZER_FILES = [
  'tokenizer.json',
  'vocab.json',
  'merges.txt',
  'tokenizer_config.json',
  'special_tokens_map.json',
];

/** The files that define a component: the tokenizer's files, or a model's config.json and weights file. */
function definingFiles(dir: string, component: string): string[] {
  if (component === 'tokenizer') return TOKENIZER_FILES.map((f) => join(dir, f)).filter((f) => existsSync(f));
  return [join(dir, 'config.json'), findWeightsFile(dir)];
}

/**
 * SHA-256 (first 16 hex digits) over each conditioning component's defining files (names and bytes): a UNet
 * only works with the exact VAE and text encoder it was trained against.
 */
export function componentFingerprints(pipelineDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of CONDITIONING_COMPONENTS) {
    const dir = join(pipelineDir, c);
    if (!existsSync(dir))
      throw new KinemaError(
        'TRAIN_EXPORT_FAILED',
        `unet stage: ${pipelineDir} has no ${c}/ folder (train and export the CLIP and VAE stages first)`,
      );
    const hash = createHash('sha256');
    for (const file of definingFiles(dir, c)) hash.update(`${basename(file)}\0`).update(readFileSync(file));
    out[c] = hash.digest('hex').slice(0, 16);
  }
  return out;
}

/** JSON with object keys sorted, so that two configs compare by content rather than key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/**
 * The starting weights of a run whose `--init` is a pipeline folder (e.g. models/default, or a folder a run
 * exported into): its `unet/` weights as float32 and, when the run fine-tunes the text encoder, its
 * `text_encoder/` weights under `text_encoder.`. The folder's UNet config must be the run's up to the switchable
 * keys (a folder with the temporal text attention needs a run with it), and its VAE and tokenizer, and its text
 * encoder when the run does not train one, must be those the run trains against (`trainedWith`: their
 * `componentFingerprints`).
 */
export function initFromPipelineFolder(
  dir: string,
  config: Readonly<Record<string, unknown>>,
  trainedWith: Record<string, string>,
  trainsText: boolean,
): StateDict {
  const unetDir = join(dir, 'unet');
  if (!existsSync(join(unetDir, 'config.json')))
    throw new KinemaError(
      'TRAIN_EXPORT_FAILED',
      `--init: ${dir} has no unet/config.json (give a pipeline folder such as models/default, or a checkpoint file)`,
    );
  const theirs = readConfig(unetDir);
  const comparable = (c: Readonly<Record<string, unknown>>): string => {
    const { _diffusers_version: _version, ...rest } = c;
    return canonicalJson(withoutSwitchableKeys(rest));
  };
  if (comparable(theirs) !== comparable(config))
    throw new KinemaError(
      'TRAIN_EXPORT_FAILED',
      `--init: ${unetDir}/config.json differs from this run's UNet config (${canonicalJson(theirs)}, this run: ` +
        `${canonicalJson(config)})`,
    );
  if (theirs['temporal_text_attention'] === true && config['temporal_text_attention'] !== true)
    throw new KinemaError(
      'TRAIN_EXPORT_FAILED',
      `--init: ${dir}'s UNet has the temporal text attention; pass --temporal-text-attention to keep it`,
    );
  const differ = changedComponents(componentFingerprints(dir), trainedWith, trainsText);
  if (differ.length > 0)
    throw new KinemaError(
      'TRAIN_EXPORT_FAILED',
      `--init: ${dir}'s ${differ.join(', ')} differ from the one(s) this run trains against; ` +
        'the UNet only fits the components it was trained with',
    );
  const weights = loadStateDict(unetDir).stateDict;
  if (trainsText)
    for (const [k, v] of loadStateDict(join(dir, 'text_encoder')).stateDict)
      weights.set(TEXT_ENCODER_PREFIX + k, v);
  return weights;
}

/** The conditioning components whose fingerprints differ (the text encoder not, when the run trains it). */
function changedComponents(
  a: Record<string, unknown>,
  b: Record<string, unknown>,
  trainsText: boolean,
): string[] {
  return CONDITIONING_COMPONENTS.filter((c) => a[c] !== b[c] && !(trainsText && c === 'text_encoder'));
}

/**
 * Refuses to export a UNet into a folder whose VAE / tokenizer / text encoder differ from its training (the
 * text encoder is not compared when the run trained it: the export replaces it).
 */
export function checkSameComponents(pipelineDir: string, trainedWith: unknown, trainsText: boolean): void {
  const now = componentFingerprints(pipelineDir);
  const saved = (trainedWith ?? {}) as Record<string, unknown>;
  const changed = changedComponents(now, saved, trainsText);
  if (changed.length > 0)
    throw new KinemaError(
      'TRAIN_EXPORT_FAILED',
      `unet export: ${pipelineDir}'s ${changed.join(', ')} differ from the one(s) the UNet was trained with ` +
        `(fingerprints now ${JSON.stringify(now)}, at training ${JSON.stringify(saved)}); retrain the UNet ` +
        'against the current components or restore them',
    );
}

/**
 * Writes `pipelineDir/unet` (fp16 EMA weights + config.json), `pipelineDir/scheduler/scheduler_config.json`
 * (DDIM on the training betas) and `pipelineDir/model_index.json`; when the weights hold a fine-tuned text
 * encoder (`text_encoder.*` keys), also `pipelineDir/text_encoder` (its config.json kept). Returns the
 * folders written.
 */
export function exportUnetPipeline(
  pipelineDir: string,
  config: Readonly<Record<string, unknown>>,
  weights: StateDict,
  predictionType: TrainPrediction,
  zeroTerminalSnr = false,
  noiseShift = 1,
): string[] {
  const parts = splitJointWeights(weights);
  const written: string[] = [];
  if (parts.textEncoder.size > 0) {
    const textDir = join(pipelineDir, 'text_encoder');
    const textConfig = readConfig(textDir);
    const textModule = new ClipTextRoot(parseClipTextConfig(textConfig, `${textDir}/config.json`), false);
    exportComponent(textDir, {
      config: textConfig,
      stateDict: parts.textEncoder,
      module: textModule,
      weightsBasename: 'model',
    });
    written.push(textDir);
  }
  const module = UNet3DConditionModel.fromConfig({ ...config });
  exportComponent(join(pipelineDir, 'unet'), {
    config: { ...config },
    stateDict: parts.unet,
    module,
    weightsBasename: 'diffusion_pytorch_model',
  });
  mkdirSync(join(pipelineDir, 'scheduler'), { recursive: true });
  writeJsonAtomic(join(pipelineDir, 'scheduler', 'scheduler_config.json'), {
    ...DEFAULT_SCHEDULER_CONFIG,
    prediction_type: predictionType,
    ...(zeroTerminalSnr && { rescale_betas_zero_snr: true, timestep_spacing: 'trailing' }),
    ...(noiseShift !== 1 && { trained_betas: Array.from(noiseShiftedBetas(noiseShift)) }),
  });
  writeJsonAtomic(join(pipelineDir, 'model_index.json'), DEFAULT_MODEL_INDEX);
  written.push(join(pipelineDir, 'unet'), join(pipelineDir, 'scheduler'));
  return written;
}

/** Exports the EMA weights of a run's latest checkpoint (`out/checkpoints`) into `pipelineDir`; returns its step. */
export function exportUnetCheckpoint(out: string, pipelineDir: string): number {
  const ckpt = loadLatestCheckpoint(join(out, 'checkpoints'));
  if (!ckpt)
    throw new KinemaError(
      'TRAIN_NO_CHECKPOINT',
      `unet export: no checkpoint in ${join(out, 'checkpoints')} (train first)`,
    );
  const config = ckpt.extra?.['unet_config'];
  if (
    ckpt.extra?.['stage'] !== 'unet' ||
    typeof config !== 'object' ||
    config === null ||
    Array.isArray(config)
  )
    throw new KinemaError('TRAIN_EXPORT_FAILED', `unet export: ${ckpt.path} is not a UNet stage checkpoint`);
  const data = ckpt.extra['data'] as
    | {
        predictionType?: TrainPrediction;
        trainTextEncoder?: boolean;
        zeroTerminalSnr?: boolean;
        noiseShift?: number;
      }
    | undefined;
  checkSameComponents(pipelineDir, ckpt.extra['components'], data?.trainTextEncoder === true);
  exportUnetPipeline(
    pipelineDir,
    config as Record<string, unknown>,
    ckpt.ema ? ckpt.ema.stateDict() : ckpt.params,
    data?.predictionType ?? 'epsilon',
    data?.zeroTerminalSnr === true,
    data?.noiseShift ?? 1,
  );
  return ckpt.step;
}
