// VideoCrafter1's image projection model (`image_proj_model.*`): the query transformer of
// lvdm/modules/encoders/ip_resampler.py `Resampler` (from open_flamingo's perceiver resampler), which turns the
// 257 patch tokens of the OpenCLIP ViT-H/14 visual tower (before ln_post) into 16 image tokens of the UNet's
// context width. With the release's key names:
//   latents [1, Q, dim]                 the learned queries
//   proj_in (dim × embedding_dim, bias) the tokens onto the query width
//   layers.i.0  PerceiverAttention: norm1 (tokens), norm2 (queries), to_q, to_kv (k ‖ v), to_out — no biases;
//               keys/values are [norm1(tokens) ‖ norm2(queries)], softmax(q·kᵀ/√dim_head) in fp32
//   layers.i.1  FeedForward: 0 LayerNorm, 1 Linear (no bias), GELU (exact), 3 Linear (no bias)
//   proj_out (output_dim × dim, bias), norm_out (LayerNorm)
// Each layer adds to the queries: q ← attn(tokens, q) + q; q ← ff(q) + q. The release builds it in code
// (ddpm3d.py LatentVisualDiffusion.init_projector, `finegrained: true`): dim 1024, depth 4, dim_head 64, heads 12,
// 16 queries, embedding_dim 1280, output_dim 1024, ff_mult 4; `finegrained: false` would build ImageProjModel
// (proj + norm on a pooled embedding, 4 tokens), which the release's token embedder cannot feed — not supported.
import type { Tensor, InputSpec } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import type { HostTensor } from '../../engine/runtime.js';
import type { Shape } from '../../engine/ir.js';
import { Module, ModuleList, StateDictError } from '../../nn/module.js';
import type { StateDict } from '../../nn/module.js';
import { LayerNorm, Linear } from '../../nn/layers.js';
import { compileWithWeights } from '../../nn/compile.js';
import type { CompiledFunction } from '../../nn/compile.js';
import type { CheckpointKeyMap } from '../../io/checkpoint_keys.js';
import { KinemaError } from '../../errors.js';

export interface LvdmResamplerConfig {
  /** Width of the queries and of the attention/FF blocks. */
  dim: number;
  depth: number;
  dimHead: number;
  heads: number;
  /** Learned queries = image tokens out (16 in the release). */
  numQueries: number;
  /** Width of the image tokens in (the visual tower's width: 1280 for ViT-H/14). */
  embeddingDim: number;
  /** Width of the tokens out (the UNet's context_dim: 1024). */
  outputDim: number;
  ffMult: number;
}

/** What VideoCrafter1's I2V release builds (ddpm3d.py init_projector with finegrained, 16 tokens). */
export const VIDEOCRAFTER1_RESAMPLER: Readonly<LvdmResamplerConfig> = {
  dim: 1024,
  depth: 4,
  dimHead: 64,
  heads: 12,
  numQueries: 16,
  embeddingDim: 1280,
  outputDim: 1024,
  ffMult: 4,
};

/** ip_resampler.Resampler's own argument defaults (what a config block that omits a value gets). */
const RESAMPLER_CLASS_DEFAULTS: Readonly<LvdmResamplerConfig> = {
  dim: 1024,
  depth: 8,
  dimHead: 64,
  heads: 16,
  numQueries: 8,
  embeddingDim: 768,
  outputDim: 1024,
  ffMult: 4,
};

const SNAKE: Record<string, keyof LvdmResamplerConfig> = {
  dim: 'dim',
  depth: 'depth',
  dim_head: 'dimHead',
  heads: 'heads',
  num_queries: 'numQueries',
  embedding_dim: 'embeddingDim',
  output_dim: 'outputDim',
  ff_mult: 'ffMult',
};

/**
 * A Resampler's `params` block (snake_case, as a YAML `image_proj_stage_config.params` writes it); values it
 * omits take the Resampler class's defaults, as instantiate_from_config would. Unknown parameters (for example
 * DynamiCrafter's `video_length`) are LVDM_CONFIG errors.
 */
export function parseLvdmResamplerConfig(
  raw: Record<string, unknown>,
  where = 'image_proj_stage_config.params',
): LvdmResamplerConfig {
  const cfg: LvdmResamplerConfig = { ...RESAMPLER_CLASS_DEFAULTS };
  for (const [k, v] of Object.entries(raw)) {
    const field = SNAKE[k];
    if (field === undefined)
      throw new KinemaError(
        'LVDM_CONFIG',
        `${where}.${k}: not a parameter of VideoCrafter's ip_resampler.Resampler (${Object.keys(SNAKE).join(', ')})`,
      );
    if (typeof v !== 'number' || !(v > 0) || (field !== 'ffMult' && !Number.isInteger(v)))
      throw new KinemaError(
        'LVDM_CONFIG',
        `${where}.${k}: want a positive integer, got ${JSON.stringify(v)}`,
      );
    cfg[field] = v;
  }
  if (!Number.isInteger(cfg.dim * cfg.ffMult))
    throw new KinemaError(
      'LVDM_CONFIG',
      `${where}.ff_mult: dim × ff_mult = ${cfg.dim * cfg.ffMult} is not an integer`,
    );
  return cfg;
}

/** PerceiverAttention: attention of the (normed) queries to [normed tokens ‖ normed queries]. */
class PerceiverAttention extends Module {
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly toQ: Linear;
  readonly toKv: Linear;
  readonly toOut: Linear;
  constructor(
    dim: number,
    readonly dimHead: number,
    readonly heads: number,
  ) {
    super();
    const inner = dimHead * heads;
    this.norm1 = this.child('norm1', new LayerNorm(dim));
    this.norm2 = this.child('norm2', new LayerNorm(dim));
    this.toQ = this.child('to_q', new Linear(dim, inner, false));
    this.toKv = this.child('to_kv', new Linear(dim, 2 * inner, false));
    this.toOut = this.child('to_out', new Linear(inner, dim, false));
  }
  /** x [B, N, dim] (projected image tokens), latents [B, Q, dim] → [B, Q, dim]. */
  forward(x: Tensor, latents: Tensor): Tensor {
    const xn = this.norm1.forward(x);
    const ln = this.norm2.forward(latents);
    const q = this.toQ.forward(ln);
    const inner = this.dimHead * this.heads;
    // to_kv(...).chunk(2, dim=-1): keys are the first half of the features, values the second
    const [k, v] = op.split(this.toKv.forward(op.concat([xn, ln], 1)), [inner, inner], 2) as [Tensor, Tensor];
    // (q·s)·(k·s)ᵀ with s = dim_head^(−1/4) is q·kᵀ/√dim_head: multiHeadAttention's default scale
    return this.toOut.forward(op.multiHeadAttention(q, k, v, this.heads));
  }
}

/** FeedForward as the release's nn.Sequential: 0 LayerNorm, 1 Linear, 2 GELU, 3 Linear (no biases). */
class ResamplerFeedForward extends Module {
  readonly norm: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(dim: number, mult: number) {
    super();
    const inner = Math.trunc(dim * mult);
    this.norm = this.child('0', new LayerNorm(dim));
    this.fc1 = this.child('1', new Linear(dim, inner, false));
    this.fc2 = this.child('3', new Linear(inner, dim, false));
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(op.gelu(this.fc1.forward(this.norm.forward(x))));
  }
}

/** One `layers.i`: an nn.ModuleList of [PerceiverAttention, FeedForward]. */
class ResamplerLayer extends Module {
  readonly attn: PerceiverAttention;
  readonly ff: ResamplerFeedForward;
  constructor(c: LvdmResamplerConfig) {
    super();
    this.attn = this.child('0', new PerceiverAttention(c.dim, c.dimHead, c.heads));
    this.ff = this.child('1', new ResamplerFeedForward(c.dim, c.ffMult));
  }
}

export class LvdmResampler extends Module {
  readonly projIn: Linear;
  readonly projOut: Linear;
  readonly normOut: LayerNorm;
  readonly layers: ResamplerLayer[];
  #weights: StateDict | null = null;
  readonly #programs = new Map<string, Promise<CompiledFunction>>();

  constructor(readonly config: LvdmResamplerConfig) {
    super();
    const c = config;
    this.declare('latents', [1, c.numQueries, c.dim], { kind: 'normal', std: 1 / Math.sqrt(c.dim) });
    this.projIn = this.child('proj_in', new Linear(c.embeddingDim, c.dim));
    this.projOut = this.child('proj_out', new Linear(c.dim, c.outputDim));
    this.normOut = this.child('norm_out', new LayerNorm(c.outputDim));
    const layers = Array.from({ length: c.depth }, () => new ResamplerLayer(c));
    this.layers = this.child('layers', new ModuleList(layers)).items;
  }

  /** Binds weights after the strict check (missing, unexpected or mis-shaped keys throw STATE_DICT_MISMATCH). */
  loadWeights(sd: StateDict, shapes?: ReadonlyMap<string, Shape>): void {
    this.validateStateDict(sd, shapes ? { shapes } : {});
    this.#weights = sd;
    this.#programs.clear();
  }

  get stateDict(): StateDict {
    if (!this.#weights)
      throw new KinemaError('LVDM_BAD_INPUT', 'LvdmResampler has no weights: call loadWeights first');
    return this.#weights;
  }

  /** Image tokens [B, N, embeddingDim] → [B, numQueries, outputDim]. */
  forward(x: Tensor): Tensor {
    const c = this.config;
    if (x.rank !== 3 || x.shape[2] !== c.embeddingDim)
      throw new KinemaError(
        'LVDM_BAD_INPUT',
        `LvdmResampler: tokens must be [B, N, ${c.embeddingDim}], got ${x.toString()}`,
      );
    const b = x.shape[0]!;
    let latents = op.expand(this.p('latents'), [b, c.numQueries, c.dim]);
    const h = this.projIn.forward(x);
    for (const layer of this.layers) {
      latents = op.add(layer.attn.forward(h, latents), latents);
      latents = op.add(layer.ff.forward(latents), latents);
    }
    return this.normOut.forward(this.projOut.forward(latents));
  }

  /** Host call: compiles one program per input shape (cached) and runs it. */
  async run(tokens: HostTensor): Promise<HostTensor> {
    const spec: InputSpec = { name: 'tokens', shape: tokens.shape, dtype: tokens.dtype };
    const key = tokens.shape.join(',');
    let compiled = this.#programs.get(key);
    if (!compiled) {
      compiled = compileWithWeights((x: Tensor) => this.forward(x), [spec], this.stateDict);
      this.#programs.set(key, compiled);
      compiled.catch(() => this.#programs.delete(key));
    }
    return (await (await compiled).exe.run({ tokens }))['out0']!;
  }
}

/**
 * Loads `image_proj_model.*` (or `prefix`) strictly onto a Resampler of `config`: every key under the prefix is
 * taken; a missing, unknown or mis-shaped one is CKPT_KEY_MISMATCH naming it. The other projector the release
 * can build (ImageProjModel: `proj.*`, `norm.*`) is named as not supported.
 */
export function loadLvdmResampler(
  keys: CheckpointKeyMap,
  config: LvdmResamplerConfig,
  prefix = 'image_proj_model.',
): LvdmResampler {
  const path = keys.reader.path;
  const names = keys.reader.keys();
  if (names.includes(`${prefix}proj.weight`) && names.includes(`${prefix}norm.weight`))
    throw new KinemaError(
      'CKPT_KEY_MISMATCH',
      `${path}: ${prefix}proj.* / ${prefix}norm.* are VideoCrafter's ImageProjModel (finegrained: false, 4 tokens ` +
        `from a pooled embedding), which Kinema does not run; the I2V release uses the Resampler (finegrained: true)`,
    );
  const { stateDict, shapes } = keys.take(prefix);
  const model = new LvdmResampler(config);
  try {
    model.loadWeights(stateDict, shapes);
  } catch (e) {
    if (!(e instanceof StateDictError)) throw e;
    throw new KinemaError(
      'CKPT_KEY_MISMATCH',
      `${path}: the image projection model under ${prefix} does not match a Resampler of dim ${config.dim}, ` +
        `depth ${config.depth}, ${config.heads}×${config.dimHead} heads, ${config.numQueries} queries, ` +
        `${config.embeddingDim} → ${config.outputDim} (keys relative to ${prefix}): ${e.message}`,
    );
  }
  return model;
}
