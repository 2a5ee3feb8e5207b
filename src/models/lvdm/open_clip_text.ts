// VideoCrafter's text encoder (FrozenOpenCLIPEmbedder, lvdm/modules/encoders/condition.py): OpenCLIP's text
// tower (ViT-H-14 in the release) read up to its penultimate residual block, then `ln_final` — the per-token
// states, no pooling. That is transformers' CLIPTextModel with one layer fewer and exact GELU (the layout
// diffusers' OpenCLIP conversion uses for SD 2), so Kinema maps the `cond_stage_model.model.*` keys onto its
// CLIPTextModel: `in_proj_weight/bias` split into q/k/v, `c_fc/c_proj` → `fc1/fc2`, `ln_1/ln_2` →
// `layer_norm1/2`. The blocks past the chosen layer, `text_projection` and `logit_scale` (used only for pooled
// embeddings) are checked for presence and left unused; any other key under the prefix is an error.
import { KinemaError } from '../../errors.js';
import type { CheckpointKeyMap } from '../../io/checkpoint_keys.js';
import type { StateDict } from '../../nn/module.js';
import { parseClipTextConfig } from '../clip/config.js';
import { CLIPTextModel } from '../clip/text_model.js';
import { ClipTextRoot } from '../clip/text_model.js';

export type OpenClipLayer = 'last' | 'penultimate';

export interface OpenClipTextOptions {
  /** Key prefix of the OpenCLIP model (default `cond_stage_model.model.`). */
  prefix?: string;
  /** Which block's output `ln_final` reads (VideoCrafter: 'penultimate'). */
  layer?: OpenClipLayer;
  /** Attention heads (OpenCLIP: width / 64 unless the model config says otherwise). */
  heads?: number;
}

const BLOCK = /^transformer\.resblocks\.(\d+)\.(.+)$/;

const BLOCK_NAMES: Record<string, string> = {
  'ln_1.weight': 'layer_norm1.weight',
  'ln_1.bias': 'layer_norm1.bias',
  'ln_2.weight': 'layer_norm2.weight',
  'ln_2.bias': 'layer_norm2.bias',
  'attn.out_proj.weight': 'self_attn.out_proj.weight',
  'attn.out_proj.bias': 'self_attn.out_proj.bias',
  'mlp.c_fc.weight': 'mlp.fc1.weight',
  'mlp.c_fc.bias': 'mlp.fc1.bias',
  'mlp.c_proj.weight': 'mlp.fc2.weight',
  'mlp.c_proj.bias': 'mlp.fc2.bias',
  'attn.in_proj_weight': 'in_proj.weight', // split below
  'attn.in_proj_bias': 'in_proj.bias',
};

function fail(reader: string, message: string): never {
  throw new KinemaError('CKPT_KEY_MISMATCH', `${reader}: ${message}`);
}

/** Loads the OpenCLIP text tower under `prefix` strictly, as a CLIPTextModel giving VideoCrafter's states. */
export function loadOpenClipText(keys: CheckpointKeyMap, opts: OpenClipTextOptions = {}): CLIPTextModel {
  const prefix = opts.prefix ?? 'cond_stage_model.model.';
  const path = keys.reader.path;
  const layer = opts.layer ?? 'penultimate';
  const blocks = new Set<number>();
  for (const k of keys.reader.keys()) {
    const m = k.startsWith(prefix) ? BLOCK.exec(k.slice(prefix.length)) : null;
    if (m) blocks.add(Number(m[1]));
  }
  const total = blocks.size;
  if (total === 0) fail(path, `no OpenCLIP text blocks under ${prefix}transformer.resblocks.*`);
  const used = total - (layer === 'penultimate' ? 1 : 0);
  if (used < 1) fail(path, `the ${layer} layer of a ${total}-block text tower leaves no block to run`);
  const unknown: string[] = [];
  const { stateDict: raw, shapes } = keys.take(prefix, (rest) => {
    if (rest === 'token_embedding.weight') return 'text_model.embeddings.token_embedding.weight';
    if (rest === 'positional_embedding') return 'text_model.embeddings.position_embedding.weight';
    if (rest === 'ln_final.weight' || rest === 'ln_final.bias')
      return `text_model.final_layer_norm.${rest.slice('ln_final.'.length)}`;
    const m = BLOCK.exec(rest);
    if (m) {
      const i = Number(m[1]);
      const name = BLOCK_NAMES[m[2]!];
      if (name === undefined) unknown.push(prefix + rest);
      // blocks past the chosen layer are part of the file but not of the states VideoCrafter reads
      return name === undefined || i >= used ? undefined : `text_model.encoder.layers.${i}.${name}`;
    }
    if (rest !== 'text_projection' && rest !== 'logit_scale' && rest !== 'attn_mask')
      unknown.push(prefix + rest);
    return undefined;
  });
  if (unknown.length > 0)
    fail(path, `keys that are not part of an OpenCLIP text tower: ${unknown.slice(0, 10).join(', ')}`);
  keys.ignore((k) => {
    if (!k.startsWith(prefix)) return false;
    const rest = k.slice(prefix.length);
    const m = BLOCK.exec(rest);
    return m
      ? Number(m[1]) >= used
      : rest === 'text_projection' || rest === 'logit_scale' || rest === 'attn_mask';
  });
  const sd: StateDict = new Map();
  for (const [name, v] of raw) {
    const m = /^(.*)\.in_proj\.(weight|bias)$/.exec(name);
    if (!m) {
      sd.set(name, v);
      continue;
    }
    const third = v.length / 3;
    ['q_proj', 'k_proj', 'v_proj'].forEach((p, j) =>
      sd.set(`${m[1]}.self_attn.${p}.${m[2]}`, v.slice(j * third, (j + 1) * third)),
    );
  }
  const [vocab, width] =
    shapes.get('text_model.embeddings.token_embedding.weight') ??
    fail(path, `missing ${prefix}token_embedding.weight`);
  const [context] =
    shapes.get('text_model.embeddings.position_embedding.weight') ??
    fail(path, `missing ${prefix}positional_embedding`);
  const [inter] =
    shapes.get('text_model.encoder.layers.0.mlp.fc1.weight') ??
    fail(path, `missing ${prefix}transformer.resblocks.0.mlp.c_fc.weight`);
  const heads = opts.heads ?? Math.max(1, Math.floor(width! / 64));
  const config = parseClipTextConfig(
    {
      hidden_size: width,
      intermediate_size: inter,
      num_hidden_layers: used,
      num_attention_heads: heads,
      hidden_act: 'gelu',
      vocab_size: vocab,
      max_position_embeddings: context,
      // open_clip.tokenize: <start_of_text> 49406, <end_of_text> 49407, padded with 0
      bos_token_id: 49406,
      eos_token_id: 49407,
      pad_token_id: 0,
      architectures: ['CLIPTextModel'],
    },
    `${path} (${prefix}*)`,
  );
  const module = new ClipTextRoot(config, false);
  try {
    return new CLIPTextModel(config, module, sd);
  } catch (e) {
    fail(path, `OpenCLIP text tower under ${prefix}: ${(e as Error).message}`);
  }
}
