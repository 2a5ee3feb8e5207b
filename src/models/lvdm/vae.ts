// VideoCrafter's first stage (LDM's AutoencoderKL, lvdm/modules/networks/ae_modules.py) on Kinema's
// AutoencoderKL (diffusers layout): the `ddconfig` becomes a diffusers config and every `first_stage_model.*`
// key is renamed onto diffusers' names (the same mapping as diffusers' own LDM conversion script), with the
// mid-block attention's 1×1 conv weights taken as the Linear weights they are.
import { KinemaError } from '../../errors.js';
import { AutoencoderKL } from '../vae/autoencoder_kl.js';
import type { CheckpointKeyMap } from '../../io/checkpoint_keys.js';

/** LDM `ddconfig` (+ embed_dim, scale_factor) → diffusers AutoencoderKL config. */
export function ldmVaeConfig(
  dd: Record<string, unknown>,
  opts: { embedDim?: number; scaleFactor?: number } = {},
): Record<string, unknown> {
  const num = (k: string, d?: number): number => {
    const v = dd[k] ?? d;
    if (typeof v !== 'number')
      throw new KinemaError('LVDM_CONFIG', `LVDM first_stage ddconfig.${k}: want a number, got ${String(v)}`);
    return v;
  };
  const mult = (dd['ch_mult'] ?? [1, 2, 4, 4]) as number[];
  const attn = (dd['attn_resolutions'] ?? []) as unknown[];
  if (attn.length > 0) {
    throw new KinemaError(
      'LVDM_CONFIG',
      `LVDM first_stage ddconfig.attn_resolutions: ${JSON.stringify(attn)} (only [] — attention in the mid block alone — maps onto AutoencoderKL)`,
    );
  }
  if (dd['double_z'] === false)
    throw new KinemaError('LVDM_CONFIG', 'LVDM first_stage ddconfig.double_z: false is not a KL autoencoder');
  const z = num('z_channels', 4);
  if (opts.embedDim !== undefined && opts.embedDim !== z) {
    throw new KinemaError(
      'LVDM_CONFIG',
      `LVDM first_stage embed_dim ${opts.embedDim} differs from z_channels ${z}`,
    );
  }
  return {
    _class_name: 'AutoencoderKL',
    in_channels: num('in_channels', 3),
    out_channels: num('out_ch', 3),
    down_block_types: mult.map(() => 'DownEncoderBlock2D'),
    up_block_types: mult.map(() => 'UpDecoderBlock2D'),
    block_out_channels: mult.map((m) => m * num('ch', 128)),
    layers_per_block: num('num_res_blocks', 2),
    latent_channels: z,
    norm_num_groups: 32,
    sample_size: num('resolution', 256),
    scaling_factor: opts.scaleFactor ?? 0.18215,
  };
}

const ATTN: Record<string, string> = {
  norm: 'group_norm',
  q: 'to_q',
  k: 'to_k',
  v: 'to_v',
  proj_out: 'to_out.0',
};

/** One LDM first-stage key (without `first_stage_model.`) → its diffusers name; `levels` = len(ch_mult). */
export function ldmVaeKey(key: string, levels: number): string | undefined {
  const resnet = (rest: string): string => rest.replace(/^nin_shortcut\./, 'conv_shortcut.');
  let m = /^(encoder|decoder)\.(conv_in|conv_out)\.(weight|bias)$/.exec(key);
  if (m) return key;
  if ((m = /^(quant_conv|post_quant_conv)\.(weight|bias)$/.exec(key))) return key;
  if ((m = /^(encoder|decoder)\.norm_out\.(weight|bias)$/.exec(key))) return `${m[1]}.conv_norm_out.${m[2]}`;
  if ((m = /^(encoder|decoder)\.mid\.block_([12])\.(.+)$/.exec(key)))
    return `${m[1]}.mid_block.resnets.${Number(m[2]) - 1}.${resnet(m[3]!)}`;
  if ((m = /^(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)$/.exec(key))) {
    return `${m[1]}.mid_block.attentions.0.${ATTN[m[2]!]}.${m[3]}`;
  }
  if ((m = /^encoder\.down\.(\d+)\.block\.(\d+)\.(.+)$/.exec(key)))
    return `encoder.down_blocks.${m[1]}.resnets.${m[2]}.${resnet(m[3]!)}`;
  if ((m = /^encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)$/.exec(key)))
    return `encoder.down_blocks.${m[1]}.downsamplers.0.conv.${m[2]}`;
  // The decoder's `up` list is indexed by resolution level (0 = full size); diffusers' up_blocks run low → high.
  if ((m = /^decoder\.up\.(\d+)\.block\.(\d+)\.(.+)$/.exec(key)))
    return `decoder.up_blocks.${levels - 1 - Number(m[1])}.resnets.${m[2]}.${resnet(m[3]!)}`;
  if ((m = /^decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)$/.exec(key)))
    return `decoder.up_blocks.${levels - 1 - Number(m[1])}.upsamplers.0.conv.${m[2]}`;
  return undefined;
}

/** Builds the AutoencoderKL of an LDM first stage and loads `prefix*` (default `first_stage_model.`) strictly. */
export function loadLdmVae(
  keys: CheckpointKeyMap,
  ddconfig: Record<string, unknown>,
  opts: { prefix?: string; scaleFactor?: number; embedDim?: number } = {},
): AutoencoderKL {
  const config = ldmVaeConfig(ddconfig, opts);
  const levels = (config['block_out_channels'] as number[]).length;
  const prefix = opts.prefix ?? 'first_stage_model.';
  const unknown: string[] = [];
  const { stateDict, shapes } = keys.take(prefix, (rest) => {
    const name = ldmVaeKey(rest, levels);
    if (name === undefined) unknown.push(prefix + rest);
    return name;
  });
  if (unknown.length > 0) {
    throw new KinemaError(
      'CKPT_KEY_MISMATCH',
      `${keys.reader.path}: keys that are not part of an LDM first stage: ${unknown.slice(0, 10).join(', ')}`,
    );
  }
  // LDM's mid-block attention uses 1×1 convs: the same numbers as diffusers' Linear weights, shape [C, C, 1, 1].
  for (const [name, shape] of shapes) {
    if (/\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight$/.test(name) && shape.length === 4)
      shapes.set(name, shape.slice(0, 2));
  }
  const vae = AutoencoderKL.fromConfig(config);
  vae.loadWeights(stateDict, shapes);
  return vae;
}
