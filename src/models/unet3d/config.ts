// UNet3DConditionModel configuration: parsed from a diffusers config.json (snake_case keys) into a typed,
// validated camelCase object. Missing keys take diffusers' defaults (the text-to-video-ms-1.7b architecture).
//
// Kinema extension: `fps_cond: true` adds VideoCrafter1's frame-rate conditioning (`fps_embedding.linear_1/2`,
// a TimestepEmbedding of the sinusoidal embedding of the fps, added to the timestep embedding). Default off,
// so diffusers checkpoints load unchanged.
// Kinema extension: `temporal_positions: "sinusoidal"` adds a fixed sinusoidal embedding of the frame index to
// the normed inputs of every temporal transformer's attentions (diffusers' `positional_embeddings="sinusoidal"`,
// as AnimateDiff's motion modules use), so that temporal attention knows frame order. No parameters, so the
// state-dict keys are unchanged; default off (ModelScope's temporal attention has no positions).
// Kinema extension: `temporal_text_attention: true` gives every temporal transformer a third attention, from
// each (pixel, frame) token to the text states (`attn_text`, pre-norm `norm_text`, in each
// `temp_attentions.*.transformer_blocks.0` and `transformer_in.transformer_blocks.0`), its output projection
// initialised to zero. It adds parameters: a checkpoint without them is completed by a fine-tuning run
// (`kinema train unet --temporal-text-attention --init …`), which starts exactly from the checkpoint's function.
// Default off (diffusers' temporal transformers attend only over frames).
// Kinema extension: `frame_noise_shared: ρ` (a number in [0, 1)) records that the model was trained on
// frame-correlated noise (PYoCo's mixed noise prior, `schedulers/frame_noise.ts`): the pipeline then makes its
// initial latents the same way. No parameters; default 0 (independent noise per frame, as diffusers).

import { KinemaError } from '../../errors.js';

export class UNet3DConfigError extends KinemaError {
  constructor(message: string) {
    super('UNET_CONFIG_INVALID', message);
    this.name = 'UNet3DConfigError';
  }
}

/** Down block types, and whether each has (spatial + temporal) attention after its resnets. */
export const DOWN_BLOCK_TYPES = {
  CrossAttnDownBlock3D: { crossAttention: true },
  DownBlock3D: { crossAttention: false },
} as const;
export const UP_BLOCK_TYPES = {
  CrossAttnUpBlock3D: { crossAttention: true },
  UpBlock3D: { crossAttention: false },
} as const;
export type DownBlockType = keyof typeof DOWN_BLOCK_TYPES;
export type UpBlockType = keyof typeof UP_BLOCK_TYPES;

export const ACTIVATIONS = ['silu', 'swish', 'gelu', 'relu', 'mish'] as const;
export type ActivationName = (typeof ACTIVATIONS)[number];

export interface UNet3DConfig {
  readonly sampleSize: number | null;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly downBlockTypes: readonly DownBlockType[];
  readonly upBlockTypes: readonly UpBlockType[];
  readonly blockOutChannels: readonly number[];
  readonly layersPerBlock: number;
  readonly downsamplePadding: number;
  readonly midBlockScaleFactor: number;
  readonly actFn: ActivationName;
  readonly normNumGroups: number;
  readonly normEps: number;
  readonly crossAttentionDim: number;
  /**
   * diffusers' legacy meaning: with `num_attention_heads` null, this value is the per-block **head size** of the
   * spatial/temporal transformers (heads = channels / value), and the head size of `transformer_in` (8 heads).
   */
  readonly attentionHeadDim: number;
  readonly timeCondProjDim: number | null;
  /** Kinema extension (VideoCrafter1): frame-rate conditioning through `fps_embedding`. */
  readonly fpsCond: boolean;
  /** Kinema extension: sinusoidal frame positions in the temporal transformers. */
  readonly temporalPositions: boolean;
  /** Kinema extension: attention to the text in the temporal transformers (`attn_text`). */
  readonly temporalTextAttention: boolean;
  /** Kinema extension: fraction ρ of the noise variance shared by all frames (0: independent frames). */
  readonly frameNoiseShared: number;
}

const DEFAULTS: UNet3DConfig = {
  sampleSize: null,
  inChannels: 4,
  outChannels: 4,
  downBlockTypes: ['CrossAttnDownBlock3D', 'CrossAttnDownBlock3D', 'CrossAttnDownBlock3D', 'DownBlock3D'],
  upBlockTypes: ['UpBlock3D', 'CrossAttnUpBlock3D', 'CrossAttnUpBlock3D', 'CrossAttnUpBlock3D'],
  blockOutChannels: [320, 640, 1280, 1280],
  layersPerBlock: 2,
  downsamplePadding: 1,
  midBlockScaleFactor: 1,
  actFn: 'silu',
  normNumGroups: 32,
  normEps: 1e-5,
  crossAttentionDim: 1024,
  attentionHeadDim: 64,
  timeCondProjDim: null,
  fpsCond: false,
  temporalPositions: false,
  temporalTextAttention: false,
  frameNoiseShared: 0,
};

type Raw = Record<string, unknown>;

function fail(key: string, expected: string, got: unknown): never {
  throw new UNet3DConfigError(`UNet3D config: '${key}' must be ${expected}, got ${JSON.stringify(got)}`);
}

function posInt(raw: Raw, key: string, dflt: number, min = 1): number {
  const v = raw[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(key, `an integer ≥ ${min}`, v);
  return v;
}

function optionalPosInt(raw: Raw, key: string): number | null {
  const v = raw[key];
  if (v === undefined || v === null) return null;
  return posInt(raw, key, 0);
}

function posNumber(raw: Raw, key: string, dflt: number): number {
  const v = raw[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(key, 'a positive number', v);
  return v;
}

function intList(raw: Raw, key: string, dflt: readonly number[]): number[] {
  const v = raw[key];
  if (v === undefined) return [...dflt];
  if (
    !Array.isArray(v) ||
    v.length === 0 ||
    !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x > 0)
  ) {
    fail(key, 'a non-empty array of positive integers', v);
  }
  return v as number[];
}

function blockTypes<T extends string>(
  raw: Raw,
  key: string,
  known: Record<T, unknown>,
  dflt: readonly T[],
): T[] {
  const v = raw[key];
  if (v === undefined) return [...dflt];
  if (!Array.isArray(v) || v.length === 0) fail(key, 'a non-empty array of block type names', v);
  return v.map((t: unknown, i) => {
    if (typeof t !== 'string' || !Object.prototype.hasOwnProperty.call(known, t)) {
      throw new UNet3DConfigError(
        `UNet3D config: unknown ${key.replace(/_types$/, '')} type ${JSON.stringify(t)} at ${key}[${i}] ` +
          `(supported: ${Object.keys(known).join(', ')})`,
      );
    }
    return t as T;
  });
}

function headDim(raw: Raw): number {
  const v = raw['attention_head_dim'];
  if (Array.isArray(v)) {
    // diffusers would use a list per block, but transformer_in takes attention_head_dim as its head size,
    // which only works for a single integer (diffusers fails to build such a model too).
    throw new UNet3DConfigError(
      `UNet3D config: attention_head_dim must be a single integer (transformer_in uses it as its head size), ` +
        `got ${JSON.stringify(v)}`,
    );
  }
  return posInt(raw, 'attention_head_dim', DEFAULTS.attentionHeadDim);
}

function activation(raw: Raw): ActivationName {
  const v = raw['act_fn'];
  if (v === undefined) return DEFAULTS.actFn;
  if (typeof v !== 'string' || !(ACTIVATIONS as readonly string[]).includes(v))
    fail('act_fn', `one of ${ACTIVATIONS.join(', ')}`, v);
  return v as ActivationName;
}

function checkCompatibility(raw: Raw): void {
  const cls = raw['_class_name'];
  if (cls !== undefined && cls !== 'UNet3DConditionModel') {
    throw new UNet3DConfigError(
      `UNet3D config: _class_name is ${JSON.stringify(cls)}, expected "UNet3DConditionModel"`,
    );
  }
  if (raw['num_attention_heads'] !== undefined && raw['num_attention_heads'] !== null) {
    // diffusers itself raises here: the head count is taken from attention_head_dim (legacy naming).
    throw new UNet3DConfigError(
      'UNet3D config: num_attention_heads must be null (diffusers does not support it for UNet3DConditionModel; ' +
        'attention_head_dim sets the attention layout)',
    );
  }
  if (raw['norm_num_groups'] === null) {
    throw new UNet3DConfigError(
      'UNet3D config: norm_num_groups null is not supported (the resnets need group norms)',
    );
  }
  const fps = raw['fps_cond'];
  if (fps !== undefined && typeof fps !== 'boolean') fail('fps_cond', 'true or false', fps);
  const positions = raw['temporal_positions'];
  if (positions !== undefined && positions !== null && positions !== 'sinusoidal') {
    fail('temporal_positions', '"sinusoidal" or null', positions);
  }
  const textAttention = raw['temporal_text_attention'];
  if (textAttention !== undefined && textAttention !== null && typeof textAttention !== 'boolean') {
    fail('temporal_text_attention', 'true, false or null', textAttention);
  }
  const shared = raw['frame_noise_shared'];
  if (shared !== undefined && shared !== null && !(typeof shared === 'number' && shared >= 0 && shared < 1)) {
    fail('frame_noise_shared', 'a number in [0, 1)', shared);
  }
}

function checkStructure(c: UNet3DConfig): void {
  const n = c.blockOutChannels.length;
  if (c.downBlockTypes.length !== n || c.upBlockTypes.length !== n) {
    throw new UNet3DConfigError(
      `UNet3D config: down_block_types (${c.downBlockTypes.length}), up_block_types (${c.upBlockTypes.length}) ` +
        `and block_out_channels (${n}) must have the same length`,
    );
  }
  for (const ch of c.blockOutChannels) {
    if (ch % c.normNumGroups !== 0) {
      throw new UNet3DConfigError(
        `UNet3D config: block_out_channels entry ${ch} is not divisible by norm_num_groups ${c.normNumGroups}`,
      );
    }
    if (ch < c.attentionHeadDim) {
      throw new UNet3DConfigError(
        `UNet3D config: block_out_channels entry ${ch} is smaller than attention_head_dim ${c.attentionHeadDim}`,
      );
    }
  }
}

/** Parses and validates a config.json object; errors name the offending key. */
export function parseUNet3DConfig(raw: Record<string, unknown>): UNet3DConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new UNet3DConfigError('UNet3D config must be a JSON object');
  }
  checkCompatibility(raw);
  const config: UNet3DConfig = {
    sampleSize: optionalPosInt(raw, 'sample_size'),
    inChannels: posInt(raw, 'in_channels', DEFAULTS.inChannels),
    outChannels: posInt(raw, 'out_channels', DEFAULTS.outChannels),
    downBlockTypes: blockTypes(raw, 'down_block_types', DOWN_BLOCK_TYPES, DEFAULTS.downBlockTypes),
    upBlockTypes: blockTypes(raw, 'up_block_types', UP_BLOCK_TYPES, DEFAULTS.upBlockTypes),
    blockOutChannels: intList(raw, 'block_out_channels', DEFAULTS.blockOutChannels),
    layersPerBlock: posInt(raw, 'layers_per_block', DEFAULTS.layersPerBlock),
    downsamplePadding: posInt(raw, 'downsample_padding', DEFAULTS.downsamplePadding, 0),
    midBlockScaleFactor: posNumber(raw, 'mid_block_scale_factor', DEFAULTS.midBlockScaleFactor),
    actFn: activation(raw),
    normNumGroups: posInt(raw, 'norm_num_groups', DEFAULTS.normNumGroups),
    normEps: posNumber(raw, 'norm_eps', DEFAULTS.normEps),
    crossAttentionDim: posInt(raw, 'cross_attention_dim', DEFAULTS.crossAttentionDim),
    attentionHeadDim: headDim(raw),
    timeCondProjDim: optionalPosInt(raw, 'time_cond_proj_dim'),
    fpsCond: raw['fps_cond'] === true,
    temporalPositions: raw['temporal_positions'] === 'sinusoidal',
    temporalTextAttention: raw['temporal_text_attention'] === true,
    frameNoiseShared: typeof raw['frame_noise_shared'] === 'number' ? raw['frame_noise_shared'] : 0,
  };
  checkStructure(config);
  return config;
}

/** The published text-to-video-ms-1.7b UNet config (diffusers layout; `damo-vilab/text-to-video-ms-1.7b/unet`). */
export const MODELSCOPE_T2V_1_7B_CONFIG: Readonly<Record<string, unknown>> = {
  _class_name: 'UNet3DConditionModel',
  act_fn: 'silu',
  attention_head_dim: 64,
  block_out_channels: [320, 640, 1280, 1280],
  cross_attention_dim: 1024,
  down_block_types: ['CrossAttnDownBlock3D', 'CrossAttnDownBlock3D', 'CrossAttnDownBlock3D', 'DownBlock3D'],
  downsample_padding: 1,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 32,
  up_block_types: ['UpBlock3D', 'CrossAttnUpBlock3D', 'CrossAttnUpBlock3D', 'CrossAttnUpBlock3D'],
};
