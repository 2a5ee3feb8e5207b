// A whole VideoCrafter (LVDM LatentDiffusion) checkpoint: the inference YAML's `model.params` say what the file
// holds; the UNet loads from `model.diffusion_model.*`, the first stage from `first_stage_model.*`, the OpenCLIP
// text tower from `cond_stage_model.model.*`, each by its own names and strictly. The DDPM buffers LatentDiffusion
// saves (`betas`, `alphas_cumprod`, … from register_schedule in lvdm/models/ddpm3d.py) are recomputed from the
// YAML's schedule and compared, so a file trained on another schedule fails by name instead of sampling wrongly.
// EMA copies (`model_ema.*`) are left unused and counted. Every other key is an error (CKPT_KEY_MISMATCH).
// VideoCrafter1's image-to-video checkpoint (LatentVisualDiffusion) adds `embedder.model.visual.*` (the OpenCLIP
// ViT-H/14 visual tower), `image_proj_model.*` (the Resampler) and, with `use_scale`, the `scale_arr` buffer:
// loadLvdmI2VCheckpoint loads those too (docs/videocrafter_i2v.md); loadLvdmCheckpoint refuses such a file by name.
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
import { loadOpenClipVision } from '../clip/open_clip_vision.js';
import type { CLIPVisionModel } from '../clip/vision_model.js';
import { parseLvdmUNetConfig } from './config.js';
import {
  VIDEOCRAFTER1_RESAMPLER,
  loadLvdmResampler,
  parseLvdmResamplerConfig,
  type LvdmResampler,
  type LvdmResamplerConfig,
} from './image_proj.js';

/** LatentDiffusion's `use_scale` (VideoCrafter1 I2V, VideoCrafter2): x₀ is scaled by scale_arr[t] in q_sample/DDIM. */
export interface LvdmLatentScale {
  readonly scaleA: number;
  readonly scaleB: number;
  readonly midStep: number;
  /** false (the release's default) makes scale_arr mid_step + timesteps long instead of timesteps. */
  readonly fixScaleBug: boolean;
}

/** The image conditioning of a LatentVisualDiffusion model (VideoCrafter1 I2V). */
export interface LvdmImageSettings {
  /** `cond_img_config.target` (FrozenOpenCLIPImageEmbedderV2: the visual tower's tokens before ln_post). */
  readonly embedder: string;
  /** The Resampler: ddpm3d.py's fixed sizes, or `image_proj_stage_config.params` when the YAML has that block. */
  readonly resampler: LvdmResamplerConfig;
}

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
  /** `model.target` (lvdm.models.ddpm3d.LatentDiffusion or …LatentVisualDiffusion), when given. */
  readonly target?: string | undefined;
  /** Image conditioning (LatentVisualDiffusion / `cond_img_config`); undefined for text-to-video models. */
  readonly image?: LvdmImageSettings | undefined;
  /** `use_scale: true` and its parameters; undefined when the model does not scale x₀. */
  readonly latentScale?: LvdmLatentScale | undefined;
}

const IMAGE_EMBEDDER = 'FrozenOpenCLIPImageEmbedderV2';

/** The image-conditioning part of `model.params` (undefined for a text-to-video model). */
function parseImageSettings(
  p: Record<string, unknown>,
  target: string | undefined,
  where: string,
): LvdmImageSettings | undefined {
  const visual = target?.endsWith('LatentVisualDiffusion') === true;
  if (p['cond_img_config'] === undefined) {
    if (visual) fail(where, `model.target ${target} needs model.params.cond_img_config (its image embedder)`);
    return undefined;
  }
  const cond = record(p['cond_img_config'], where, '"cond_img_config"');
  const embedder = cond['target'];
  if (typeof embedder !== 'string' || !embedder.endsWith(IMAGE_EMBEDDER))
    fail(
      where,
      `cond_img_config.target ${JSON.stringify(embedder)}: only lvdm.modules.encoders.condition.${IMAGE_EMBEDDER} ` +
        `(the OpenCLIP visual tower's tokens before ln_post, VideoCrafter1 I2V) is supported`,
    );
  const params = cond['params'] ? record(cond['params'], where, '"cond_img_config.params"') : {};
  if (params['layer'] === 'penultimate')
    fail(
      where,
      `cond_img_config.params.layer: "penultimate" raises NotImplementedError in ${IMAGE_EMBEDDER}`,
    );
  const finegrained = p['finegrained'] ?? false;
  if (finegrained !== true)
    fail(
      where,
      `model.params.finegrained: ${JSON.stringify(finegrained)} builds ImageProjModel (4 tokens from a pooled ` +
        `1024-wide embedding), which ${IMAGE_EMBEDDER}'s 257 tokens cannot feed and Kinema does not run; the I2V ` +
        `release has finegrained: true (the Resampler)`,
    );
  const stage = p['image_proj_stage_config'];
  let resampler: LvdmResamplerConfig = { ...VIDEOCRAFTER1_RESAMPLER };
  if (stage !== undefined) {
    const block = record(stage, where, '"image_proj_stage_config"');
    const t = block['target'];
    if (t !== undefined && (typeof t !== 'string' || !t.endsWith('ip_resampler.Resampler')))
      fail(
        where,
        `image_proj_stage_config.target ${JSON.stringify(t)}: only lvdm.modules.encoders.ip_resampler.Resampler is supported`,
      );
    resampler = parseLvdmResamplerConfig(
      block['params'] ? record(block['params'], where, '"image_proj_stage_config.params"') : {},
      `${where}: image_proj_stage_config.params`,
    );
  }
  return { embedder, resampler };
}

function parseLatentScale(p: Record<string, unknown>, where: string): LvdmLatentScale | undefined {
  const use = p['use_scale'] ?? false;
  if (typeof use !== 'boolean')
    fail(where, `model.params.use_scale must be true/false, got ${JSON.stringify(use)}`);
  if (!use) return undefined;
  const num = (k: string, d: number): number => {
    const v = p[k] ?? d;
    if (typeof v !== 'number' || !Number.isFinite(v))
      fail(where, `model.params.${k} must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const fix = p['fix_scale_bug'] ?? false;
  if (typeof fix !== 'boolean') fail(where, `model.params.fix_scale_bug must be true/false`);
  const midStep = num('mid_step', 400);
  if (!Number.isInteger(midStep) || midStep < 1)
    fail(where, `model.params.mid_step must be a positive integer, got ${midStep}`);
  // ddpm3d.py's defaults: scale_a 1, scale_b 0.3, mid_step 400, fix_scale_bug False
  return { scaleA: num('scale_a', 1), scaleB: num('scale_b', 0.3), midStep, fixScaleBug: fix };
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
  const target = model['target'];
  if (target !== undefined && typeof target !== 'string') fail(where, 'model.target must be a string');
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
    target,
    image: parseImageSettings(p, target, where),
    latentScale: parseLatentScale(p, where),
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

/** LatentDiffusion's scale_arr (float64): linspace(scale_a, scale_b, mid_step) then scale_b for the rest. */
export function ldmScaleArr(scale: LvdmLatentScale, timesteps: number): Float64Array {
  // the release's default (fix_scale_bug False) appends `timesteps` values, not timesteps − mid_step
  const rest = scale.fixScaleBug ? timesteps - scale.midStep : timesteps;
  const n = scale.midStep;
  const out = new Float64Array(n + Math.max(rest, 0)).fill(scale.scaleB);
  // np.linspace: start + i·step, the last value exactly the end
  const step = n > 1 ? (scale.scaleB - scale.scaleA) / (n - 1) : 0;
  for (let i = 0; i < n - 1; i++) out[i] = scale.scaleA + i * step;
  if (n === 1) out[0] = scale.scaleA;
  return out;
}

/** Compares the file's `scale_arr` (when it has one) with the one the YAML's use_scale settings give. */
export function checkScaleArr(keys: CheckpointKeyMap, s: LvdmModelSettings): string[] {
  const path = keys.reader.path;
  if (!keys.reader.keys().includes('scale_arr')) return [];
  if (!s.latentScale)
    throw new KinemaError(
      'CKPT_SCHEDULE_MISMATCH',
      `${path}: the checkpoint has "scale_arr" (trained with use_scale) but the config has no model.params.use_scale: true`,
    );
  const want = ldmScaleArr(s.latentScale, s.timesteps);
  const got = keys.tensor('scale_arr').data;
  const { scaleA, scaleB, midStep, fixScaleBug } = s.latentScale;
  const described = `scale_a ${scaleA}, scale_b ${scaleB}, mid_step ${midStep}, fix_scale_bug ${fixScaleBug}`;
  if (got.length !== want.length)
    throw new KinemaError(
      'CKPT_SCHEDULE_MISMATCH',
      `${path}: "scale_arr" has ${got.length} entries, the config's (${described}) ${want.length}`,
    );
  for (let i = 0; i < want.length; i++) {
    if (Math.abs(got[i]! - want[i]!) > 1e-6 * Math.max(1, Math.abs(want[i]!)))
      throw new KinemaError(
        'CKPT_SCHEDULE_MISMATCH',
        `${path}: "scale_arr"[${i}] is ${got[i]}, the config's (${described}) gives ${want[i]}`,
      );
  }
  return ['scale_arr'];
}

export interface LoadedLvdm {
  readonly unet: LvdmUNet;
  readonly vae: AutoencoderKL;
  readonly textEncoder: CLIPTextModel | null;
  readonly settings: LvdmModelSettings;
  /** Schedule buffers compared with the config. */
  readonly checkedBuffers: readonly string[];
  /** Keys deliberately left unused (EMA copies; for I2V also the image embedder's unused CLIP text parts). */
  readonly ignored: number;
}

/** The key prefixes only an image-to-video (LatentVisualDiffusion) checkpoint has. */
const I2V_PREFIXES = ['embedder.', 'image_proj_model.'] as const;

function loadCommonParts(
  keys: CheckpointKeyMap,
  settings: LvdmModelSettings,
  opts: { textHeads?: number },
): Pick<LoadedLvdm, 'unet' | 'vae' | 'textEncoder'> {
  const reader = keys.reader;
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
  return { unet, vae, textEncoder };
}

/** Loads every part of a LatentDiffusion checkpoint strictly; a key no part takes is CKPT_KEY_MISMATCH. */
export function loadLvdmCheckpoint(
  reader: TensorReader,
  settings: LvdmModelSettings,
  opts: { textHeads?: number } = {},
): LoadedLvdm {
  const i2v = reader.keys().filter((k) => I2V_PREFIXES.some((p) => k.startsWith(p)));
  if (i2v.length > 0)
    throw new KinemaError(
      'CKPT_KEY_MISMATCH',
      `${reader.path}: an image-to-video (LatentVisualDiffusion) checkpoint — ${i2v.length} keys such as ` +
        `${i2v.slice(0, 3).join(', ')} are its image embedder and projection model; load it with ` +
        `loadLvdmI2VCheckpoint and its I2V YAML (the text-to-video path does not run it)`,
    );
  const keys = new CheckpointKeyMap(reader);
  const parts = loadCommonParts(keys, settings, opts);
  const checkedBuffers = checkScheduleBuffers(keys, settings);
  const ignored = keys.ignore((k) => k.startsWith('model_ema.'));
  keys.assertAllUsed('a VideoCrafter (LVDM) checkpoint');
  return { ...parts, settings, checkedBuffers, ignored };
}

export interface LoadedLvdmI2V extends LoadedLvdm {
  /** `embedder.model.visual.*`: `encode(...).lastHiddenState` is the 257 tokens before ln_post (ViT-H/14, 224²). */
  readonly imageEncoder: CLIPVisionModel;
  /** `image_proj_model.*`: the Resampler, tokens → the image context tokens. */
  readonly imageProj: LvdmResampler;
}

export interface LvdmI2VLoadOptions {
  /** OpenCLIP text attention heads (default width / 64). */
  textHeads?: number;
  /** OpenCLIP visual attention heads (default: open_clip's config for the width, 16 for ViT-H/14's 1280). */
  visionHeads?: number;
}

// FrozenOpenCLIPImageEmbedderV2 builds a whole OpenCLIP model and deletes only its text transformer
// (`del model.transformer`): the rest of the text side stays in the state dict and is never run.
const EMBEDDER_TEXT_LEFTOVERS = new Set([
  'token_embedding.weight',
  'positional_embedding',
  'ln_final.weight',
  'ln_final.bias',
  'text_projection',
  'logit_scale',
  'attn_mask',
]);

/**
 * Loads a VideoCrafter1 image-to-video checkpoint (LatentVisualDiffusion) strictly: the UNet (with its
 * `attn2.to_k_ip/to_v_ip`), first stage, OpenCLIP text tower, `embedder.model.visual.*` (the OpenCLIP visual
 * tower), `image_proj_model.*` (the Resampler of the settings), the DDPM buffers and scale_arr checked against the
 * YAML. Left unused by name: `model_ema.*` and the image embedder's text leftovers (`embedder.model.token_embedding`,
 * `positional_embedding`, `ln_final`, `text_projection`, `logit_scale`, `transformer.*`). Any other key is
 * CKPT_KEY_MISMATCH naming it.
 */
export function loadLvdmI2VCheckpoint(
  reader: TensorReader,
  settings: LvdmModelSettings,
  opts: LvdmI2VLoadOptions = {},
): LoadedLvdmI2V {
  if (!settings.image)
    throw new KinemaError(
      'LVDM_CONFIG',
      `${reader.path}: the config describes no image conditioning (model.target ` +
        `lvdm.models.ddpm3d.LatentVisualDiffusion with cond_img_config, as configs/inference_i2v_512_v1.0.yaml)`,
    );
  const r = settings.image.resampler;
  const unetConfig = parseLvdmUNetConfig(settings.unet);
  if (r.outputDim !== unetConfig.contextDim)
    throw new KinemaError(
      'LVDM_CONFIG',
      `${reader.path}: the resampler's output_dim ${r.outputDim} differs from unet_config.params.context_dim ` +
        `${unetConfig.contextDim}: its tokens could not join the text context`,
    );
  const keys = new CheckpointKeyMap(reader);
  const parts = loadCommonParts(keys, settings, opts);
  const imageEncoder = loadOpenClipVision(keys, {
    prefix: 'embedder.model.visual.',
    ...(opts.visionHeads !== undefined && { heads: opts.visionHeads }),
  });
  if (imageEncoder.config.hiddenSize !== r.embeddingDim)
    throw new KinemaError(
      'CKPT_KEY_MISMATCH',
      `${reader.path}: the visual tower under embedder.model.visual. is ${imageEncoder.config.hiddenSize} wide, ` +
        `the resampler's embedding_dim is ${r.embeddingDim}`,
    );
  let ignored = keys.ignore((k) => {
    if (!k.startsWith('embedder.model.')) return false;
    const rest = k.slice('embedder.model.'.length);
    return EMBEDDER_TEXT_LEFTOVERS.has(rest) || rest.startsWith('transformer.');
  });
  const imageProj = loadLvdmResampler(keys, r);
  const checkedBuffers = [...checkScheduleBuffers(keys, settings), ...checkScaleArr(keys, settings)];
  ignored += keys.ignore((k) => k.startsWith('model_ema.'));
  keys.assertAllUsed('a VideoCrafter image-to-video (LatentVisualDiffusion) checkpoint');
  return { ...parts, settings, checkedBuffers, ignored, imageEncoder, imageProj };
}
