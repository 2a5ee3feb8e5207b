// A whole VideoCrafter (LVDM LatentDiffusion) checkpoint: the inference YAML's `model.params` say what the file
// holds; the UNet loads from `model.diffusion_model.*`, the first stage from `first_stage_model.*`, the OpenCLIP
// text tower from `cond_stage_model.model.*`, each by its own names and strictly. The DDPM buffers LatentDiffusion
// saves (`betas`, `alphas_cumprod`, … from register_schedule in lvdm/models/ddpm3d.py) are recomputed from the
// YAML's schedule and compared, so a file trained on another schedule fails by name instead of sampling wrongly.
// EMA copies (`model_ema.*`) are left unused and counted. Every other key is an error (CKPT_KEY_MISMATCH).
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { KinemaError } from '../../errors.js';
import { CheckpointKeyMap } from '../../io/checkpoint_keys.js';
import type { TensorReader } from '../../io/checkpoint_keys.js';
import type { AutoencoderKL } from '../vae/autoencoder_kl.js';
import type { CLIPTextModel } from '../clip/text_model.js';
import { LvdmUNet } from './unet.js';
import { loadLdmVae } from './vae.js';
import { loadOpenClipText } from './open_clip_text.js';
import type { OpenClipLayer } from './open_clip_text.js';

export interface LvdmModelSettings {
  readonly linearStart: number;
  readonly linearEnd: number;
  readonly timesteps: number;
  readonly scaleFactor: number;
  readonly parameterization: 'eps' | 'v';
  /** `unet_config.params` (snake_case, as the YAML writes them). */
  readonly unet: Record<string, unknown>;
  /** `first_stage_config.params.ddconfig` and `embed_dim`. */
  readonly ddconfig: Record<string, unknown>;
  readonly embedDim: number | undefined;
  /** `cond_stage_config.params.layer` (VideoCrafter: 'penultimate'). */
  readonly textLayer: OpenClipLayer;
  /** `image_size`: the latent [h, w] the model was trained at (VideoCrafter1 512: [40, 64]), when given. */
  readonly latentSize: [number, number] | undefined;
}

function fail(where: string, message: string): never {
  throw new KinemaError('LVDM_CONFIG', `${where}: ${message}`);
}

function record(v: unknown, where: string, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, `${what} must be a mapping`);
  return v as Record<string, unknown>;
}

/** The inference YAML (or its parsed object) → the settings a checkpoint is loaded with. */
export function parseLvdmSettings(doc: unknown, where = 'LVDM config'): LvdmModelSettings {
  const root = record(doc, where, 'the document');
  const model = record(root['model'], where, '"model"');
  const p = record(model['params'], where, '"model.params"');
  const num = (k: string, d: number): number => {
    const v = p[k] ?? d;
    if (typeof v !== 'number' || !Number.isFinite(v))
      fail(where, `model.params.${k} must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const unet = record(
    record(p['unet_config'], where, '"model.params.unet_config"')['params'],
    where,
    '"unet_config.params"',
  );
  const first = record(
    record(p['first_stage_config'], where, '"first_stage_config"')['params'],
    where,
    '"first_stage_config.params"',
  );
  const cond = p['cond_stage_config'] ? record(p['cond_stage_config'], where, '"cond_stage_config"') : {};
  const condParams = cond['params'] ? record(cond['params'], where, '"cond_stage_config.params"') : {};
  const layer = condParams['layer'] ?? 'last';
  if (layer !== 'last' && layer !== 'penultimate')
    fail(
      where,
      `cond_stage_config.params.layer must be "last" or "penultimate", got ${JSON.stringify(layer)}`,
    );
  const parameterization = p['parameterization'] ?? 'eps';
  if (parameterization !== 'eps' && parameterization !== 'v')
    fail(
      where,
      `model.params.parameterization must be "eps" or "v", got ${JSON.stringify(parameterization)}`,
    );
  const embed = first['embed_dim'];
  if (embed !== undefined && typeof embed !== 'number')
    fail(where, 'first_stage_config.params.embed_dim must be a number');
  const size = p['image_size'];
  const latentSize =
    size === undefined
      ? undefined
      : typeof size === 'number'
        ? ([size, size] as [number, number])
        : Array.isArray(size) && size.length === 2 && size.every((v) => typeof v === 'number')
          ? ([size[0], size[1]] as [number, number])
          : fail(where, `model.params.image_size must be a number or [h, w], got ${JSON.stringify(size)}`);
  return {
    latentSize,
    linearStart: num('linear_start', 1e-4),
    linearEnd: num('linear_end', 2e-2),
    timesteps: num('timesteps', 1000),
    scaleFactor: num('scale_factor', 1),
    parameterization,
    unet,
    ddconfig: record(first['ddconfig'], where, '"first_stage_config.params.ddconfig"'),
    embedDim: embed as number | undefined,
    textLayer: layer,
  };
}

/** Reads an inference YAML (VideoCrafter's configs/*.yaml) or JSON file. */
export function readLvdmConfigFile(path: string): LvdmModelSettings {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(path, 'utf8'));
  } catch (e) {
    fail(path, `not a readable YAML file (${(e as Error).message.split('\n')[0]})`);
  }
  return parseLvdmSettings(doc, path);
}

/** LDM's schedule buffers (register_schedule, v_posterior 0) in float64, from the "linear" (√-spaced) betas. */
export function ldmScheduleBuffers(
  s: Pick<LvdmModelSettings, 'linearStart' | 'linearEnd' | 'timesteps'>,
): Map<string, Float64Array> {
  const T = s.timesteps;
  const betas = new Float64Array(T);
  const a = Math.sqrt(s.linearStart);
  const b = Math.sqrt(s.linearEnd);
  for (let i = 0; i < T; i++) betas[i] = (a + ((b - a) * i) / Math.max(T - 1, 1)) ** 2;
  const ac = new Float64Array(T);
  let prod = 1;
  for (let i = 0; i < T; i++) ac[i] = prod *= 1 - betas[i]!;
  const prev = Float64Array.from(ac, (_, i) => (i === 0 ? 1 : ac[i - 1]!));
  const map = (f: (i: number) => number) => Float64Array.from({ length: T }, (_, i) => f(i));
  const postVar = map((i) => (betas[i]! * (1 - prev[i]!)) / (1 - ac[i]!));
  return new Map([
    ['betas', betas],
    ['alphas_cumprod', ac],
    ['alphas_cumprod_prev', prev],
    ['sqrt_alphas_cumprod', map((i) => Math.sqrt(ac[i]!))],
    ['sqrt_one_minus_alphas_cumprod', map((i) => Math.sqrt(1 - ac[i]!))],
    ['log_one_minus_alphas_cumprod', map((i) => Math.log(1 - ac[i]!))],
    ['sqrt_recip_alphas_cumprod', map((i) => Math.sqrt(1 / ac[i]!))],
    ['sqrt_recipm1_alphas_cumprod', map((i) => Math.sqrt(1 / ac[i]! - 1))],
    ['posterior_variance', postVar],
    ['posterior_log_variance_clipped', map((i) => Math.log(Math.max(postVar[i]!, 1e-20)))],
    ['posterior_mean_coef1', map((i) => (betas[i]! * Math.sqrt(prev[i]!)) / (1 - ac[i]!))],
    ['posterior_mean_coef2', map((i) => ((1 - prev[i]!) * Math.sqrt(1 - betas[i]!)) / (1 - ac[i]!))],
  ]);
}

/** Compares every schedule buffer the file has with the settings' (betas and alphas_cumprod must be there). */
export function checkScheduleBuffers(keys: CheckpointKeyMap, s: LvdmModelSettings): string[] {
  const path = keys.reader.path;
  const present = new Set(keys.reader.keys());
  const checked: string[] = [];
  for (const [name, want] of ldmScheduleBuffers(s)) {
    if (!present.has(name)) {
      if (name === 'betas' || name === 'alphas_cumprod')
        throw new KinemaError(
          'CKPT_KEY_MISMATCH',
          `${path}: missing the DDPM buffer "${name}" of a LatentDiffusion checkpoint`,
        );
      continue;
    }
    const got = keys.tensor(name).data;
    if (got.length !== want.length)
      throw new KinemaError(
        'CKPT_SCHEDULE_MISMATCH',
        `${path}: "${name}" has ${got.length} timesteps, the config's schedule ${want.length} (model.params.timesteps)`,
      );
    for (let i = 0; i < want.length; i++) {
      // float32 buffers of float64 values; the first entries of the posterior terms are 0/0-like, so allow abs 1e-6
      if (Math.abs(got[i]! - want[i]!) > 1e-4 * Math.abs(want[i]!) + 1e-6)
        throw new KinemaError(
          'CKPT_SCHEDULE_MISMATCH',
          `${path}: "${name}"[${i}] is ${got[i]}, the config's schedule (linear_start ${s.linearStart}, ` +
            `linear_end ${s.linearEnd}, ${s.timesteps} steps) gives ${want[i]}: the model was trained on another schedule`,
        );
    }
    checked.push(name);
  }
  if (present.has('scale_factor')) {
    const sf = keys.tensor('scale_factor').data[0]!;
    if (Math.abs(sf - s.scaleFactor) > 1e-6 * Math.max(1, s.scaleFactor))
      throw new KinemaError(
        'CKPT_SCHEDULE_MISMATCH',
        `${path}: scale_factor ${sf} differs from the config's model.params.scale_factor ${s.scaleFactor}`,
      );
    checked.push('scale_factor');
  }
  return checked;
}

export interface LoadedLvdm {
  readonly unet: LvdmUNet;
  readonly vae: AutoencoderKL;
  readonly textEncoder: CLIPTextModel | null;
  readonly settings: LvdmModelSettings;
  /** Schedule buffers compared with the config. */
  readonly checkedBuffers: readonly string[];
  /** Keys deliberately left unused (EMA copies). */
  readonly ignored: number;
}

/** Loads every part of a LatentDiffusion checkpoint strictly; a key no part takes is CKPT_KEY_MISMATCH. */
export function loadLvdmCheckpoint(
  reader: TensorReader,
  settings: LvdmModelSettings,
  opts: { textHeads?: number } = {},
): LoadedLvdm {
  const keys = new CheckpointKeyMap(reader);
  const { stateDict, shapes } = keys.take('model.diffusion_model.');
  const unet = LvdmUNet.fromConfig(settings.unet);
  unet.loadWeights(stateDict, shapes);
  const vae = loadLdmVae(keys, settings.ddconfig, {
    scaleFactor: settings.scaleFactor,
    ...(settings.embedDim !== undefined && { embedDim: settings.embedDim }),
  });
  const hasText = reader.keys().some((k) => k.startsWith('cond_stage_model.model.'));
  const textEncoder = hasText
    ? loadOpenClipText(keys, {
        layer: settings.textLayer,
        ...(opts.textHeads !== undefined && { heads: opts.textHeads }),
      })
    : null;
  const checkedBuffers = checkScheduleBuffers(keys, settings);
  const ignored = keys.ignore((k) => k.startsWith('model_ema.'));
  keys.assertAllUsed('a VideoCrafter (LVDM) checkpoint');
  return { unet, vae, textEncoder, settings, checkedBuffers, ignored };
}
