// OpenCLIP's ViT visual tower (`open_clip.transformer.VisionTransformer`, open_clip 2.22.0) read by its own key
// names onto Kinema's CLIPVisionModelWithProjection. StreamingT2V stores its APM image encoder as
// `image_encoder.model.visual.*` and uses `visual(img)` (ln_post on the CLS token, then `@ proj`: the image
// embeds, not L2-normalised); VideoCrafter's image-to-video checkpoint stores `embedder.model.visual.*` and uses
// the tokens of the last residual block before `ln_post` (257 for ViT-H/14 at 224) — transformers'
// last_hidden_state, which in CLIP is also taken before post_layernorm.
//
// The layout is transformers' CLIP vision tower: `conv1` (no bias) = patch_embedding, `class_embedding`,
// `positional_embedding` = position_embedding.weight, `ln_pre` = pre_layrnorm, per block `ln_1/ln_2` =
// layer_norm1/2, `attn.in_proj_weight/bias` split into q/k/v, `attn.out_proj`, `mlp.c_fc/c_proj` = fc1/fc2,
// `ln_post` = post_layernorm, and `proj` [width, output_dim] (used as `x @ proj`) = visual_projection.weightᵀ.
// What the weights do not say is an option: the head count (open_clip's model configs fix head_width per
// model: 64, but 80 for ViT-H/14, so 16 heads of 1280 rather than 20) and the activation (nn.GELU unless the
// model was built with quick_gelu, as OpenAI's weights are). Layer scale (`ls_1/ls_2`), the attentional pooler
// (`attn_pool`, CoCa), dual patch norm (`patchnorm_pre_ln`) and global average pooling are not supported: the
// first three by their keys, which are errors; the last is a config flag the weights cannot show.
import { KinemaError } from '../../errors.js';
import type { CheckpointKeyMap } from '../../io/checkpoint_keys.js';
import type { ExecutionProvider, HostTensor } from '../../engine/runtime.js';
import type { StateDict } from '../../nn/module.js';
import { parseClipVisionConfig } from './config.js';
import { CLIPVisionModel, ClipVisionRoot } from './vision_model.js';

export interface OpenClipVisionOptions {
  /** Key prefix of the visual tower, with its trailing dot (StreamingT2V `image_encoder.model.visual.`). */
  prefix: string;
  /** Attention heads (default: the head count open_clip's model configs give this width, see below). */
  heads?: number;
  /** Expected patch size; the tower's comes from `conv1`, a different value is an error. */
  patchSize?: number;
  /** Expected image size; the tower's is grid × patch from `positional_embedding` and `conv1`. */
  imageSize?: number;
  /** The MLP activation: 'gelu' (nn.GELU, open_clip's default) or 'quick_gelu' (OpenAI-trained towers). */
  act?: 'gelu' | 'quick_gelu';
  ep?: ExecutionProvider;
  threads?: number;
}

// Heads by width in open_clip 2.22.0's ViT model configs (model_configs/*.json: width // head_width); widths
// not listed use its default head_width of 64.
const HEADS_BY_WIDTH: ReadonlyMap<number, number> = new Map([
  [1280, 16], // ViT-H-14, ViT-H-16 (head_width 80)
  [1408, 16], // ViT-g-14 (88)
  [1664, 16], // ViT-bigG-14 (104)
  [1792, 16], // ViT-e-14 (112)
]);

/** The head count open_clip's model configs pair with a ViT width (ViT-H/14: 1280 → 16). */
export function defaultOpenClipVisionHeads(width: number): number {
  return HEADS_BY_WIDTH.get(width) ?? Math.max(1, Math.floor(width / 64));
}

const BLOCK = /^transformer\.resblocks\.(\d+)\.(.+)$/;

const BLOCK_NAMES: Record<string, string> = {
  'ln_1.weight': 'layer_norm1.weight',
  'ln_1.bias': 'layer_norm1.bias',
  'ln_2.weight': 'layer_norm2.weight',
  'ln_2.bias': 'layer_norm2.bias',
  'attn.in_proj_weight': 'in_proj.weight', // split below
  'attn.in_proj_bias': 'in_proj.bias',
  'attn.out_proj.weight': 'self_attn.out_proj.weight',
  'attn.out_proj.bias': 'self_attn.out_proj.bias',
  'mlp.c_fc.weight': 'mlp.fc1.weight',
  'mlp.c_fc.bias': 'mlp.fc1.bias',
  'mlp.c_proj.weight': 'mlp.fc2.weight',
  'mlp.c_proj.bias': 'mlp.fc2.bias',
};

const TOP_NAMES: Record<string, string> = {
  class_embedding: 'vision_model.embeddings.class_embedding',
  positional_embedding: 'vision_model.embeddings.position_embedding.weight',
  'conv1.weight': 'vision_model.embeddings.patch_embedding.weight',
  'ln_pre.weight': 'vision_model.pre_layrnorm.weight',
  'ln_pre.bias': 'vision_model.pre_layrnorm.bias',
  'ln_post.weight': 'vision_model.post_layernorm.weight',
  'ln_post.bias': 'vision_model.post_layernorm.bias',
  proj: 'visual_projection.weight', // transposed below
};

/** Keys of open_clip ViT variants Kinema does not run, and why. */
function unsupported(rest: string): string | undefined {
  if (rest.startsWith('attn_pool.')) return 'the attentional pooler (CoCa)';
  if (rest.startsWith('patchnorm_pre_ln.')) return 'dual patch norm (input_patchnorm)';
  const m = BLOCK.exec(rest);
  if (m && /^ls_[12]\./.test(m[2]!)) return 'layer scale (ls_init_value)';
  if (m && m[2]!.startsWith('ln_1_kv.')) return 'cross-attention blocks';
  return undefined;
}

function fail(reader: string, message: string): never {
  throw new KinemaError('CKPT_KEY_MISMATCH', `${reader}: ${message}`);
}

/** The OpenCLIP keys a ViT tower of `layers` blocks holds (relative to the prefix). */
function expectedKeys(layers: number): string[] {
  const keys = Object.keys(TOP_NAMES);
  for (let i = 0; i < layers; i++)
    for (const b of Object.keys(BLOCK_NAMES)) keys.push(`transformer.resblocks.${i}.${b}`);
  return keys;
}

/**
 * Loads the OpenCLIP ViT visual tower under `opts.prefix` strictly, as a CLIPVisionModel with projection:
 * `encode(...).imageEmbeds` is `visual(img)`, `lastHiddenState` the last block's tokens before `ln_post`.
 * Every key under the prefix is used; an unknown one, or a missing one, is CKPT_KEY_MISMATCH naming it.
 */
export function loadOpenClipVision(keys: CheckpointKeyMap, opts: OpenClipVisionOptions): CLIPVisionModel {
  const { prefix } = opts;
  const path = keys.reader.path;
  const unknown: string[] = [];
  const notSupported: string[] = [];
  const { stateDict: raw, shapes: rawShapes } = keys.take(prefix, (rest) => {
    const why = unsupported(rest);
    if (why !== undefined) {
      notSupported.push(`${prefix}${rest} (${why})`);
      return undefined;
    }
    const top = TOP_NAMES[rest];
    if (top !== undefined) return top;
    const m = BLOCK.exec(rest);
    const name = m ? BLOCK_NAMES[m[2]!] : undefined;
    if (m && name !== undefined) return `vision_model.encoder.layers.${Number(m[1])}.${name}`;
    unknown.push(prefix + rest);
    return undefined;
  });
  if (notSupported.length > 0)
    fail(path, `OpenCLIP visual tower variant Kinema does not run: ${notSupported.slice(0, 10).join(', ')}`);
  if (unknown.length > 0) {
    fail(
      path,
      `keys that are not part of an OpenCLIP ViT visual tower (ModifiedResNet and timm towers are not ` +
        `supported): ${unknown.slice(0, 10).join(', ')}`,
    );
  }

  const blocks = new Set<number>();
  for (const name of raw.keys()) {
    const m = /^vision_model\.encoder\.layers\.(\d+)\./.exec(name);
    if (m) blocks.add(Number(m[1]));
  }
  if (blocks.size === 0) fail(path, `no OpenCLIP visual blocks under ${prefix}transformer.resblocks.*`);
  const layers = Math.max(...blocks) + 1;
  const renamed = (k: string): string => {
    const m = BLOCK.exec(k);
    return m ? `vision_model.encoder.layers.${m[1]}.${BLOCK_NAMES[m[2]!]}` : TOP_NAMES[k]!;
  };
  const missing = expectedKeys(layers).filter((k) => !raw.has(renamed(k)));
  if (missing.length > 0) {
    const more = missing.length > 10 ? ` (+${missing.length - 10} more)` : '';
    fail(
      path,
      `OpenCLIP visual tower under ${prefix} lacks ${missing
        .slice(0, 10)
        .map((k) => prefix + k)
        .join(', ')}${more}`,
    );
  }

  const shape = (k: string): number[] => rawShapes.get(renamed(k))!;
  const conv = shape('conv1.weight');
  if (conv.length !== 4) {
    fail(path, `${prefix}conv1.weight is [${conv}], not a [width, channels, patch, patch] convolution`);
  }
  const [width, channels, ph, pw] = conv as [number, number, number, number];
  if (ph !== pw) fail(path, `${prefix}conv1.weight: non-square patches ${ph}×${pw} are not supported`);
  const patch = ph;
  const [positions] = shape('positional_embedding') as [number];
  const grid = Math.round(Math.sqrt(positions - 1));
  if (grid < 1 || grid * grid + 1 !== positions) {
    fail(
      path,
      `${prefix}positional_embedding holds ${positions} positions, not 1 + grid² (non-square grids are not supported)`,
    );
  }
  const proj = shape('proj');
  const inter = shape('transformer.resblocks.0.mlp.c_fc.weight')[0]!;
  const expect: [string, number[]][] = [
    ['class_embedding', [width]],
    ['positional_embedding', [positions, width]],
    ['proj', [width, proj[1] ?? 0]],
  ];
  for (const [k, want] of expect) {
    if (shape(k).join() !== want.join())
      fail(path, `${prefix}${k} is [${shape(k)}], expected [${want}] for width ${width} (conv1)`);
  }
  if (opts.patchSize !== undefined && opts.patchSize !== patch)
    fail(path, `${prefix}conv1.weight has patch size ${patch}, expected ${opts.patchSize}`);
  if (opts.imageSize !== undefined && opts.imageSize !== grid * patch) {
    fail(
      path,
      `the OpenCLIP tower under ${prefix} is for ${grid * patch}px images (${grid}² patches of ${patch}), expected ${opts.imageSize}`,
    );
  }
  const heads = opts.heads ?? defaultOpenClipVisionHeads(width);

  // in_proj [3W, W] / [3W] → q, k, v (nn.MultiheadAttention's order); proj [W, O] → visual_projection [O, W]
  const sd: StateDict = new Map();
  const shapes = new Map<string, number[]>();
  for (const [name, v] of raw) {
    const s = rawShapes.get(name)!;
    const m = /^(.*)\.in_proj\.(weight|bias)$/.exec(name);
    if (m) {
      if (s[0] !== 3 * width) {
        const block = /layers\.(\d+)\./.exec(name)![1];
        fail(
          path,
          `${prefix}transformer.resblocks.${block}.attn.in_proj_${m[2]} is [${s}], expected [${3 * width}, …]`,
        );
      }
      const third = v.length / 3;
      ['q_proj', 'k_proj', 'v_proj'].forEach((p, j) => {
        const key = `${m[1]}.self_attn.${p}.${m[2]}`;
        sd.set(key, v.slice(j * third, (j + 1) * third));
        shapes.set(key, [width, ...s.slice(1)]);
      });
    } else if (name === 'visual_projection.weight') {
      const [w, o] = s as [number, number];
      const t = new Float32Array(v.length);
      for (let i = 0; i < w; i++) for (let j = 0; j < o; j++) t[j * w + i] = v[i * o + j]!;
      sd.set(name, t);
      shapes.set(name, [o, w]);
    } else {
      sd.set(name, v);
      shapes.set(name, s);
    }
  }

  const config = parseClipVisionConfig(
    {
      hidden_size: width,
      intermediate_size: inter,
      num_hidden_layers: layers,
      num_attention_heads: heads,
      hidden_act: opts.act ?? 'gelu',
      layer_norm_eps: 1e-5, // open_clip's LayerNorm is nn.LayerNorm's default
      num_channels: channels,
      image_size: grid * patch,
      patch_size: patch,
      projection_dim: proj[1],
      architectures: ['CLIPVisionModelWithProjection'],
    },
    `${path} (${prefix}*)`,
  );
  const module = new ClipVisionRoot(config, true);
  try {
    module.validateStateDict(sd, { shapes });
    return new CLIPVisionModel(config, module, sd, {
      ...(opts.ep && { ep: opts.ep }),
      ...(opts.threads !== undefined && { threads: opts.threads }),
    });
  } catch (e) {
    fail(path, `OpenCLIP visual tower under ${prefix}: ${(e as Error).message}`);
  }
}

export interface OpenClipVisionOutput {
  /** `visual(img)` [N, output_dim]: ln_post(CLS) @ proj, not L2-normalised (StreamingT2V's APM encoder). */
  embeds: HostTensor;
  /** The last residual block's tokens before ln_post [N, 1 + grid², width] (VideoCrafter I2V's 257). */
  tokens: HostTensor;
}

/** Runs a tower from loadOpenClipVision on `count` preprocessed images [C, S, S] stored back to back. */
export async function encodeOpenClipVision(
  model: CLIPVisionModel,
  pixels: Float32Array,
  count: number,
): Promise<OpenClipVisionOutput> {
  if (!model.withProjection)
    throw new KinemaError('CLIP_BAD_INPUT', 'OpenCLIP vision: the model has no visual projection');
  const out = await model.encode(pixels, count);
  return { embeds: out.imageEmbeds!, tokens: out.lastHiddenState };
}

/**
 * The per-token states of the last transformer block before the final LayerNorm (`ln_post`), as VideoCrafter's
 * FrozenOpenCLIPImageEmbedderV2.encode_with_vision_transformer returns them: Kinema's lastHiddenState (equal to
 * hidden_states[-1]; post_layernorm only touches the pooled CLS token).
 */
export async function openClipVisionTokens(
  model: CLIPVisionModel,
  pixels: Float32Array,
  count: number,
): Promise<HostTensor> {
  return (await model.encode(pixels, count)).lastHiddenState;
}
