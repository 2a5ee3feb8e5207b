// A UNet training recipe: one JSON file (`kinema train unet --config recipe.json`) that names everything an
// experiment chose — objective, noise schedule, timestep distribution, text-encoder training, temporal
// layers, data subset (world or a ladder rung) and data offset, budget — so that every run in a model card is
// reproducible from a committed file (`configs/unet/*.json`) instead of a long line of flags. Every field is
// optional (absent = the stage's default); an unknown key or a wrong type is refused naming its JSON path, and
// out-of-range values are refused by the stage's own checks, renamed to the JSON path.
import { readFileSync } from 'node:fs';
import { parseJsonLenient } from '../../io/json.js';
import { KinemaError } from '../../errors.js';
import { TRAIN_PREDICTIONS } from './common.js';
import type { TrainPrediction } from './common.js';
import { resolveUnetSettings } from './unet_settings.js';
import type { UnetStageSettings } from './unet_settings.js';
import { LADDER_RUNGS } from '../data/ladder.js';

/** The settings a recipe can set: the stage's experiment settings plus the two temporal-layer switches. */
export interface UnetRecipeSettings extends Omit<
  UnetStageSettings,
  'source' | 'componentsDir' | 'unetConfig'
> {
  readonly temporalPositions?: boolean;
  readonly temporalTextAttention?: boolean;
}

export interface UnetRecipe {
  /** Free text: what the recipe is for (shown nowhere else; for the reader of the file). */
  readonly description?: string;
  readonly settings: UnetRecipeSettings;
  /** The budget; command-line --steps/--batch/--lr/--seed override it. */
  readonly training: { steps?: number; batch?: number; lr?: number; seed?: number };
  /** diffusers UNet config keys over the stage's default UNet (what a plain `--config` file held before). */
  readonly unet?: Record<string, unknown>;
}

type Kind = 'number' | 'integer' | 'boolean' | 'prediction';
interface Field {
  readonly kind: Kind;
  /** Where it goes: a settings key, or a training (budget) key. */
  readonly setting?: keyof UnetRecipeSettings;
  readonly training?: keyof UnetRecipe['training'];
}

/** Section → JSON key → field. The JSON keys are snake_case like the diffusers configs next to them. */
const SECTIONS: Readonly<Record<string, Readonly<Record<string, Field>>>> = {
  training: {
    steps: { kind: 'integer', training: 'steps' },
    batch: { kind: 'integer', training: 'batch' },
    lr: { kind: 'number', training: 'lr' },
    seed: { kind: 'integer', training: 'seed' },
    warmup_steps: { kind: 'integer', setting: 'warmupSteps' },
    ema_decay: { kind: 'number', setting: 'emaDecay' },
  },
  objective: {
    prediction_type: { kind: 'prediction', setting: 'predictionType' },
    motion_weight: { kind: 'number', setting: 'motionWeight' },
  },
  schedule: {
    zero_terminal_snr: { kind: 'boolean', setting: 'zeroTerminalSnr' },
    noise_shift: { kind: 'number', setting: 'noiseShift' },
    timestep_shift: { kind: 'number', setting: 'timestepShift' },
    terminal_share: { kind: 'number', setting: 'terminalShare' },
  },
  noise: {
    frame_noise_shared: { kind: 'number', setting: 'frameNoiseShared' },
  },
  text: {
    train_text_encoder: { kind: 'boolean', setting: 'trainTextEncoder' },
    probe: { kind: 'number', setting: 'textProbe' },
    probe_captions: { kind: 'integer', setting: 'probeCaptions' },
    lr_scale: { kind: 'number', setting: 'textLrScale' },
  },
  temporal: {
    positions: { kind: 'boolean', setting: 'temporalPositions' },
    text_attention: { kind: 'boolean', setting: 'temporalTextAttention' },
    text_lr_scale: { kind: 'number', setting: 'temporalTextLrScale' },
  },
  data: {
    frames: { kind: 'integer', setting: 'frames' },
    images: { kind: 'integer', setting: 'images' },
    caption_dropout: { kind: 'number', setting: 'captionDropout' },
    track_centring: { kind: 'number', setting: 'trackCentring' },
    ladder_rung: { kind: 'integer', setting: 'ladderRung' },
    contrast: { kind: 'boolean', setting: 'contrast' },
    fixed_track: { kind: 'boolean', setting: 'fixedTrack' },
    offset: { kind: 'integer', setting: 'dataOffset' },
  },
};

/** The JSON path of every setting, so that the stage's range errors can be renamed to it. */
const SETTING_PATHS: ReadonlyMap<string, string> = new Map(
  Object.entries(SECTIONS).flatMap(([section, fields]) =>
    Object.entries(fields).flatMap(([key, f]) =>
      f.setting ? [[f.setting, `${section}.${key}`] as const] : [],
    ),
  ),
);

const bad = (file: string, message: string): KinemaError =>
  new KinemaError('TRAIN_BAD_CONFIG', `--config ${file}: ${message}`);

function checkKind(file: string, path: string, kind: Kind, v: unknown): number | boolean | TrainPrediction {
  if (kind === 'boolean') {
    if (typeof v !== 'boolean') throw bad(file, `${path} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }
  if (kind === 'prediction') {
    const hit = TRAIN_PREDICTIONS.find((p) => p === v);
    if (!hit) throw bad(file, `${path} must be ${TRAIN_PREDICTIONS.join(' or ')}, got ${JSON.stringify(v)}`);
    return hit;
  }
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw bad(file, `${path} must be a finite number, got ${JSON.stringify(v)}`);
  if (kind === 'integer' && (!Number.isSafeInteger(v) || v < 0))
    throw bad(file, `${path} must be a non-negative integer, got ${v}`);
  return v;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validates a parsed recipe (`file` names it in errors). */
export function parseUnetRecipe(value: unknown, file: string): UnetRecipe {
  if (!isObject(value)) throw bad(file, 'must hold a JSON object (a UNet training recipe)');
  const settings: Record<string, unknown> = {};
  const training: Record<string, number> = {};
  let unet: Record<string, unknown> | undefined;
  let description: string | undefined;
  for (const [section, body] of Object.entries(value)) {
    if (section === 'description') {
      if (typeof body !== 'string') throw bad(file, 'description must be a string');
      description = body;
      continue;
    }
    if (section === 'unet') {
      if (!isObject(body)) throw bad(file, 'unet must be an object of diffusers UNet config keys');
      unet = body;
      continue;
    }
    const fields = SECTIONS[section];
    if (!fields)
      throw bad(
        file,
        `unknown key '${section}' (a recipe has description, unet, ${Object.keys(SECTIONS).join(', ')}; ` +
          'UNet config keys such as block_out_channels go under "unet")',
      );
    if (!isObject(body)) throw bad(file, `${section} must be an object`);
    for (const [key, v] of Object.entries(body)) {
      const field = fields[key];
      const path = `${section}.${key}`;
      if (!field) throw bad(file, `unknown key '${path}' (${section} has ${Object.keys(fields).join(', ')})`);
      const checked = checkKind(file, path, field.kind, v);
      if (field.training) training[field.training] = checked as number;
      if (field.setting) settings[field.setting] = checked;
    }
  }
  const s = settings as UnetRecipeSettings;
  if (s.ladderRung !== undefined && s.ladderRung >= LADDER_RUNGS)
    throw bad(file, `data.ladder_rung must be 0–${LADDER_RUNGS - 1}, got ${s.ladderRung}`);
  if (s.fixedTrack === true && s.ladderRung === undefined)
    throw bad(file, 'data.fixed_track needs data.ladder_rung');
  if (s.contrast === true && s.ladderRung === undefined)
    throw bad(file, 'data.contrast needs data.ladder_rung (contrast groups are ladder scenes)');
  if (s.trackCentring !== undefined && s.ladderRung !== undefined)
    throw bad(file, 'data.track_centring applies to world data; ladder scenes have centred tracks');
  for (const k of ['steps', 'batch'] as const)
    if (training[k] === 0) throw bad(file, `training.${k} must be at least 1`);
  if (training['lr'] !== undefined && !(training['lr'] > 0)) throw bad(file, 'training.lr must be positive');
  // The stage's own range and consistency checks, now rather than after the data has loaded.
  try {
    resolveUnetSettings(s, training['batch'] ?? 1, training['seed'] ?? 0);
  } catch (e) {
    let message = (e as Error).message.replace(/^unet stage: /, '');
    for (const [setting, path] of SETTING_PATHS)
      message = message.replaceAll(new RegExp(`\\b${setting}\\b`, 'g'), path);
    throw bad(file, message);
  }
  return {
    ...(description !== undefined && { description }),
    settings: s,
    training,
    ...(unet && { unet }),
  };
}

/**
 * The parsed JSON of a `--config` file (recipes and the vae stage's model keys): an unreadable file is
 * TRAIN_BAD_OPTION, invalid JSON `invalidCode`, both naming the file. The lenient parser is the scheduler
 * configs' (NaN/Infinity allowed, errors at line:column).
 */
export function readConfigJson(file: string, invalidCode: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new KinemaError('TRAIN_BAD_OPTION', `--config: cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return parseJsonLenient(text, file);
  } catch (e) {
    throw new KinemaError(invalidCode, `--config: ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Reads and validates a recipe file. */
export function readUnetRecipe(file: string): UnetRecipe {
  return parseUnetRecipe(readConfigJson(file, 'TRAIN_BAD_CONFIG'), file);
}
