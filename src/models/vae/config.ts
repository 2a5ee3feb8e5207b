// AutoencoderKL configuration: diffusers' config.json (snake_case keys) parsed into a checked, camelCase
// VaeConfig. Defaults are those of diffusers v0.35.2 `AutoencoderKL.__init__`.
//
// Kinema extension: `"temporal_decoder": true` adds VidRD-style ("Reuse and Diffuse") temporal convolution
// layers to the decoder's up blocks. Each ResnetBlock2D of `decoder.up_blocks.{i}` is followed by
// `decoder.up_blocks.{i}.temp_convs.{j}`: three [GroupNorm → SiLU → Dropout → Conv3d (3×1×1)] stages over
// [B, C, F, H, W] with a residual connection, the last conv zero-initialised (so a fresh temporal decoder
// is exactly the image decoder). Parameter names follow VidRD's `TemporalConvLayer` (`convs.0` norm,
// `convs.3` conv, `convs.4` norm, `convs.7` conv, `convs.8` norm, `convs.11` conv). VidRD hard-codes 32 norm
// groups, which equals `norm_num_groups` of every Stable Diffusion VAE; Kinema uses `norm_num_groups`
// (eps 1e-5, torch's GroupNorm default, as in VidRD).

import { KinemaError } from '../../errors.js';

/** Bad or inconsistent VAE configuration; the message names the offending key. */
export class VaeConfigError extends KinemaError {
  constructor(message: string) {
    super('VAE_CONFIG_INVALID', message);
    this.name = 'VaeConfigError';
  }
}

export const DOWN_BLOCK_TYPES = ['DownEncoderBlock2D'] as const;
export const UP_BLOCK_TYPES = ['UpDecoderBlock2D'] as const;
export const ACTIVATIONS = ['silu', 'swish', 'relu', 'gelu', 'mish'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

export interface VaeConfig {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly downBlockTypes: readonly string[];
  readonly upBlockTypes: readonly string[];
  readonly blockOutChannels: readonly number[];
  readonly layersPerBlock: number;
  readonly actFn: Activation;
  readonly latentChannels: number;
  readonly normNumGroups: number;
  /** Image size the model was trained at: one number, or [height, width]. */
  readonly sampleSize: number | readonly number[];
  readonly scalingFactor: number;
  readonly shiftFactor: number | null;
  readonly latentsMean: readonly number[] | null;
  readonly latentsStd: readonly number[] | null;
  readonly forceUpcast: boolean;
  readonly useQuantConv: boolean;
  readonly usePostQuantConv: boolean;
  readonly midBlockAddAttention: boolean;
  /** Kinema extension: VidRD temporal conv layers in the decoder (see the file header). */
  readonly temporalDecoder: boolean;
}

type Raw = Record<string, unknown>;

function get<T>(raw: Raw, key: string, dflt: T, check: (v: unknown) => v is T, what: string): T {
  const v = raw[key];
  if (v === undefined) return dflt;
  if (!check(v)) throw new VaeConfigError(`VAE config: '${key}' must be ${what}, got ${JSON.stringify(v)}`);
  return v;
}

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isNumberOrNull = (v: unknown): v is number | null => v === null || isNumber(v);
const isPosIntList = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every(isPosInt);
const isStringList = (v: unknown): v is string[] =>
  Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string');
const isNumberListOrNull = (v: unknown): v is number[] | null =>
  v === null || (Array.isArray(v) && v.every(isNumber));
const isSampleSize = (v: unknown): v is number | number[] =>
  isPosInt(v) || (Array.isArray(v) && v.length === 2 && v.every(isPosInt));
const isActivation = (v: unknown): v is Activation =>
  typeof v === 'string' && (ACTIVATIONS as readonly string[]).includes(v);

/** Parses a diffusers AutoencoderKL config.json object (unknown keys are ignored, as diffusers does). */
export function parseVaeConfig(raw: Raw): VaeConfig {
  const cls = raw['_class_name'];
  if (cls !== undefined && cls !== 'AutoencoderKL') {
    throw new VaeConfigError(`VAE config: _class_name is '${String(cls)}', expected 'AutoencoderKL'`);
  }
  const cfg: VaeConfig = {
    inChannels: get(raw, 'in_channels', 3, isPosInt, 'a positive integer'),
    outChannels: get(raw, 'out_channels', 3, isPosInt, 'a positive integer'),
    downBlockTypes: get(
      raw,
      'down_block_types',
      ['DownEncoderBlock2D'],
      isStringList,
      'a list of block names',
    ),
    upBlockTypes: get(raw, 'up_block_types', ['UpDecoderBlock2D'], isStringList, 'a list of block names'),
    blockOutChannels: get(raw, 'block_out_channels', [64], isPosIntList, 'a list of positive integers'),
    layersPerBlock: get(raw, 'layers_per_block', 1, isPosInt, 'a positive integer'),
    actFn: get(raw, 'act_fn', 'silu', isActivation, `one of ${ACTIVATIONS.join(', ')}`),
    latentChannels: get(raw, 'latent_channels', 4, isPosInt, 'a positive integer'),
    normNumGroups: get(raw, 'norm_num_groups', 32, isPosInt, 'a positive integer'),
    sampleSize: get(raw, 'sample_size', 32, isSampleSize, 'a positive integer or [height, width]'),
    scalingFactor: get(raw, 'scaling_factor', 0.18215, isNumber, 'a number'),
    shiftFactor: get(raw, 'shift_factor', null, isNumberOrNull, 'a number or null'),
    latentsMean: get(raw, 'latents_mean', null, isNumberListOrNull, 'a list of numbers or null'),
    latentsStd: get(raw, 'latents_std', null, isNumberListOrNull, 'a list of numbers or null'),
    forceUpcast: get(raw, 'force_upcast', true, isBool, 'true or false'),
    useQuantConv: get(raw, 'use_quant_conv', true, isBool, 'true or false'),
    usePostQuantConv: get(raw, 'use_post_quant_conv', true, isBool, 'true or false'),
    midBlockAddAttention: get(raw, 'mid_block_add_attention', true, isBool, 'true or false'),
    temporalDecoder: get(raw, 'temporal_decoder', false, isBool, 'true or false'),
  };
  checkConsistency(cfg);
  return cfg;
}

function checkConsistency(cfg: VaeConfig): void {
  const n = cfg.blockOutChannels.length;
  for (const [key, types, known] of [
    ['down_block_types', cfg.downBlockTypes, DOWN_BLOCK_TYPES],
    ['up_block_types', cfg.upBlockTypes, UP_BLOCK_TYPES],
  ] as const) {
    const unknown = types.find((t) => !(known as readonly string[]).includes(t));
    if (unknown !== undefined) {
      throw new VaeConfigError(
        `VAE config: unknown block type '${unknown}' in ${key} (supported: ${known.join(', ')})`,
      );
    }
    if (types.length !== n) {
      throw new VaeConfigError(
        `VAE config: ${key} has ${types.length} entries but block_out_channels has ${n}; they must match`,
      );
    }
  }
  const bad = cfg.blockOutChannels.find((c) => c % cfg.normNumGroups !== 0);
  if (bad !== undefined) {
    throw new VaeConfigError(
      `VAE config: block_out_channels entry ${bad} is not divisible by norm_num_groups ${cfg.normNumGroups}`,
    );
  }
  for (const [key, v] of [
    ['latents_mean', cfg.latentsMean],
    ['latents_std', cfg.latentsStd],
  ] as const) {
    if (v !== null && v.length !== cfg.latentChannels) {
      throw new VaeConfigError(
        `VAE config: ${key} has ${v.length} entries, expected latent_channels = ${cfg.latentChannels}`,
      );
    }
  }
}

/** Spatial down-sampling factor between images and latents: 2 ** (len(block_out_channels) - 1). */
export function vaeScaleFactor(cfg: VaeConfig): number {
  return 2 ** (cfg.blockOutChannels.length - 1);
}
