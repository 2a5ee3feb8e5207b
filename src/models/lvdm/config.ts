// The `unet_config.params` of a VideoCrafter (LVDM) model, as its inference YAML writes them
// (configs/inference_t2v_512_v1.0.yaml, inference_i2v_512_v1.0.yaml), with the release's defaults.
import { KinemaError } from '../../errors.js';

export interface LvdmUNetConfig {
  inChannels: number;
  outChannels: number;
  modelChannels: number;
  /** Downsampling factors (1, 2, 4, …) at which a level has spatial + temporal transformers. */
  attentionResolutions: number[];
  numResBlocks: number;
  channelMult: number[];
  /** Channels per attention head (heads = channels / numHeadChannels). */
  numHeadChannels: number;
  transformerDepth: number;
  temporalTransformerDepth: number;
  contextDim: number;
  /** Linear proj_in/proj_out in the transformers (else 1×1 convs). */
  useLinear: boolean;
  /** ResBlocks end with ModelScope's temporal conv block (`temopral_conv`, the release's spelling). */
  temporalConv: boolean;
  temporalAttention: boolean;
  useRelativePosition: boolean;
  useCausalAttention: boolean;
  temporalLength: number;
  /** An extra temporal transformer (`init_attn`) after the input conv. */
  additionAttention: boolean;
  /** Decoupled image cross-attention (`to_k_ip`, `to_v_ip`) on the context tokens after the 77 text tokens. */
  useImageAttention: boolean;
  fpsCond: boolean;
}

export const LVDM_TEXT_TOKENS = 77;

function configError(field: string, message: string): KinemaError {
  return new KinemaError('LVDM_CONFIG', `LVDM unet_config.${field}: ${message}`);
}

/** Parses the YAML's unet params (snake_case). Switches Kinema does not implement are named errors. */
export function parseLvdmUNetConfig(raw: Record<string, unknown>): LvdmUNetConfig {
  const int = (k: string, d?: number): number => {
    const v = raw[k] ?? d;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
      throw configError(k, `want an integer, got ${String(v)}`);
    return v;
  };
  const bool = (k: string, d: boolean): boolean => {
    const v = raw[k] ?? d;
    if (typeof v !== 'boolean') throw configError(k, `want true/false, got ${String(v)}`);
    return v;
  };
  const ints = (k: string, d?: number[]): number[] => {
    const v = raw[k] ?? d;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x > 0)) {
      throw configError(k, `want a list of positive integers, got ${JSON.stringify(v)}`);
    }
    return v as number[];
  };
  for (const [k, want] of [
    ['use_scale_shift_norm', false],
    ['resblock_updown', false],
    ['tempspatial_aware', false],
    ['temporal_selfatt_only', true],
  ] as const) {
    if (raw[k] !== undefined && raw[k] !== want)
      throw configError(k, `only ${String(want)} is supported (the released models' value)`);
  }
  if ((raw['dims'] ?? 2) !== 2)
    throw configError('dims', 'only 2 (frames folded into the batch) is supported');
  const numHeadChannels = int('num_head_channels');
  const cfg: LvdmUNetConfig = {
    inChannels: int('in_channels'),
    outChannels: int('out_channels'),
    modelChannels: int('model_channels'),
    attentionResolutions: ints('attention_resolutions'),
    numResBlocks: int('num_res_blocks'),
    channelMult: ints('channel_mult', [1, 2, 4, 8]),
    numHeadChannels,
    transformerDepth: int('transformer_depth', 1),
    temporalTransformerDepth: int('temporal_transformer_depth', 1),
    contextDim: int('context_dim'),
    useLinear: bool('use_linear', false),
    temporalConv: bool('temporal_conv', false),
    temporalAttention: bool('temporal_attention', true),
    useRelativePosition: bool('use_relative_position', true),
    useCausalAttention: bool('use_causal_attention', false),
    temporalLength: int('temporal_length', 16),
    additionAttention: bool('addition_attention', false),
    useImageAttention: bool('use_image_attention', false),
    fpsCond: bool('fps_cond', false),
  };
  for (const m of cfg.channelMult) {
    if ((m * cfg.modelChannels) % 32 !== 0)
      throw configError(
        'channel_mult',
        `channels ${m * cfg.modelChannels} are not a multiple of GroupNorm's 32 groups`,
      );
    if ((m * cfg.modelChannels) % numHeadChannels !== 0)
      throw configError(
        'num_head_channels',
        `${numHeadChannels} does not divide ${m * cfg.modelChannels} channels`,
      );
  }
  return cfg;
}

/** The released VideoCrafter1 text-to-video 512 v1.0 UNet (configs/inference_t2v_512_v1.0.yaml). */
export const VIDEOCRAFTER1_T2V_512: Record<string, unknown> = {
  in_channels: 4,
  out_channels: 4,
  model_channels: 320,
  attention_resolutions: [4, 2, 1],
  num_res_blocks: 2,
  channel_mult: [1, 2, 4, 4],
  num_head_channels: 64,
  transformer_depth: 1,
  context_dim: 1024,
  use_linear: true,
  temporal_conv: false,
  temporal_attention: true,
  temporal_selfatt_only: true,
  use_relative_position: true,
  use_causal_attention: false,
  temporal_length: 16,
  addition_attention: true,
};

/** The released VideoCrafter1 image-to-video 512 v1.0 UNet (configs/inference_i2v_512_v1.0.yaml). */
export const VIDEOCRAFTER1_I2V_512: Record<string, unknown> = {
  ...VIDEOCRAFTER1_T2V_512,
  temporal_conv: true,
  use_relative_position: false,
  use_image_attention: true,
  fps_cond: true,
};
