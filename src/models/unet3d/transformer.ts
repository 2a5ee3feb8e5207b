// Transformers of the video UNet: per-frame spatial Transformer2DModel (self-attention over pixels, cross-
// attention to the text), TransformerTemporalModel (self-attention over frames, per pixel), and their shared
// BasicTransformerBlock / GEGLU feed-forward. Parameter names follow diffusers' state dict.
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module, ModuleList } from '../../nn/module.js';
import { GroupNorm, LayerNorm, Linear } from '../../nn/layers.js';
import { Attention } from '../../nn/attention.js';
import { sinusoidalFrequencies } from './embeddings.js';
import { KinemaError } from '../../errors.js';

/** Registers fixed-name children (e.g. nn.Sequential slots '0' and '2' with a parameter-free '1' between). */
class Slots extends Module {
  constructor(entries: ReadonlyArray<readonly [string, Module]>) {
    super();
    for (const [name, m] of entries) this.child(name, m);
  }
}

/** GEGLU: proj to 2·inner, then value · gelu(gate) (exact erf GELU). */
class GEGLU extends Module {
  readonly proj: Linear;
  constructor(dimIn: number, dimOut: number) {
    super();
    this.proj = this.child('proj', new Linear(dimIn, dimOut * 2));
  }
  forward(x: Tensor): Tensor {
    const [value, gate] = op.chunk(this.proj.forward(x), 2, -1) as [Tensor, Tensor];
    return op.mul(value, op.gelu(gate, 'none'));
  }
}

/** FeedForward with GEGLU (mult 4): net.0 = GEGLU, net.1 = dropout (inference: identity), net.2 = Linear. */
export class FeedForward extends Module {
  readonly geglu: GEGLU;
  readonly out: Linear;
  constructor(dim: number, mult = 4) {
    super();
    const inner = dim * mult;
    this.geglu = new GEGLU(dim, inner);
    this.out = new Linear(inner, dim);
    this.child(
      'net',
      new Slots([
        ['0', this.geglu],
        ['2', this.out],
      ]),
    );
  }
  forward(x: Tensor): Tensor {
    return this.out.forward(this.geglu.forward(x));
  }
}

/**
 * Cross-attention of per-frame queries x [B·F, L, dim] to a per-video context [B, S, D]. Queries never interact,
 * so a video's F frames are attended as one sequence of F·L queries: keys and values are computed once per video
 * (same result as diffusers' repeating the context F times).
 */
export function crossAttentionOverFrames(
  attn: Attention,
  x: Tensor,
  context: Tensor,
  frames: number,
): Tensor {
  const [n, l, dim] = x.shape as [number, number, number];
  const b = n / frames;
  if (context.shape[0] !== b) {
    throw new KinemaError(
      'UNET_BAD_INPUT',
      `cross-attention: context ${context.toString()} does not match ${n} rows of ${frames} frames`,
    );
  }
  return op.reshape(attn.forward(op.reshape(x, [b, frames * l, dim]), context), x.shape);
}

export interface BlockOptions {
  dim: number;
  heads: number;
  dimHead: number;
  /** Context width for attn2 (cross-attention); null makes attn2 a second self-attention. */
  crossAttentionDim: number | null;
  /**
   * Add a fixed sinusoidal embedding of each token's position to the normed input of both attentions
   * (diffusers' BasicTransformerBlock with `positional_embeddings="sinusoidal"`). No parameters.
   */
  positions?: boolean;
  /**
   * Kinema's `temporal_text_attention`: a third attention (`attn_text`, after attn2, pre-norm `norm_text`) from
   * each (pixel, frame) token to the text context of this width, its output projection zero-initialised.
   * With `positions` its queries carry the frame index, so what a frame reads from the caption can depend on
   * where the frame is in the clip. Absent or null: no such attention (diffusers' block).
   */
  textAttentionDim?: number | null;
}

/**
 * The sinusoidal position table [length, dim] of diffusers' SinusoidalPositionalEmbedding (Vaswani et al.):
 * even columns sin(p·ω_k), odd columns cos(p·ω_k), ω_k = 10000^(−2k/dim).
 */
export function sinusoidalPositionTable(length: number, dim: number): Float32Array {
  if (dim % 2 !== 0)
    throw new KinemaError('UNET_BAD_INPUT', `sinusoidal positions need an even width, got ${dim}`);
  const freqs = sinusoidalFrequencies(dim, 0); // ω_k = exp(−ln(10000)·k/(dim/2))
  const table = new Float32Array(length * dim);
  for (let p = 0; p < length; p++) {
    for (let k = 0; k < dim / 2; k++) {
      const angle = p * freqs[k]!;
      table[p * dim + 2 * k] = Math.sin(angle);
      table[p * dim + 2 * k + 1] = Math.cos(angle);
    }
  }
  return table;
}

/** x [N, L, dim] + the position table of its L tokens. */
function addPositions(x: Tensor): Tensor {
  const [, length, dim] = x.shape as [number, number, number];
  const table = op.constant(sinusoidalPositionTable(length, dim), [1, length, dim]);
  return op.add(x, op.cast(table, x.dtype));
}

/** Text context for cross-attention: per-video states [B, S, D] and the frame count F of the [B·F, …] rows. */
export interface FrameContext {
  readonly states: Tensor;
  readonly frames: number;
  /** The context of a given spatial cross-attention block instead of `states` (see `SpatialContextFn`). */
  readonly spatial?: SpatialContextFn;
  /**
   * A second branch added to each spatial cross-attention's output (decoupled image cross-attention, IP-Adapter
   * / VideoCrafter I2V): given the block and its normed input [B·F, L, dim], a tensor of the output's shape.
   */
  readonly extraCrossAttention?: ExtraCrossAttentionFn;
}

export type ExtraCrossAttentionFn = (block: BasicTransformerBlock, normed: Tensor, frames: number) => Tensor;

/** The cross-attention context [B, S', D] for one spatial transformer block, from the text states [B, S, D]. */
export type SpatialContextFn = (block: BasicTransformerBlock, text: Tensor) => Tensor;

/** Pre-norm transformer block: self-attention, attention 2 (cross or self), GEGLU feed-forward. */
export class BasicTransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn1: Attention;
  readonly norm2: LayerNorm;
  readonly attn2: Attention;
  readonly normText: LayerNorm | null = null;
  readonly attnText: Attention | null = null;
  readonly norm3: LayerNorm;
  readonly ff: FeedForward;
  constructor(readonly opts: BlockOptions) {
    super();
    const { dim, heads, dimHead } = opts;
    this.norm1 = this.child('norm1', new LayerNorm(dim));
    this.attn1 = this.child('attn1', new Attention({ queryDim: dim, heads, dimHead }));
    this.norm2 = this.child('norm2', new LayerNorm(dim));
    const cross = opts.crossAttentionDim ?? undefined;
    this.attn2 = this.child(
      'attn2',
      new Attention({ queryDim: dim, heads, dimHead, ...(cross ? { crossAttentionDim: cross } : {}) }),
    );
    const text = opts.textAttentionDim ?? null;
    if (text !== null) {
      this.normText = this.child('norm_text', new LayerNorm(dim));
      this.attnText = this.child(
        'attn_text',
        new Attention({ queryDim: dim, heads, dimHead, crossAttentionDim: text, zeroOut: true }),
      );
    }
    this.norm3 = this.child('norm3', new LayerNorm(dim));
    this.ff = this.child('ff', new FeedForward(dim));
  }
  /**
   * x [N, L, dim]; `context` is required when attn2 is a cross-attention, `text` (the text states [B, S, D] and
   * the number of x's rows per video) when the block has `attn_text`.
   */
  forward(x: Tensor, context?: FrameContext, text?: FrameContext): Tensor {
    const pos = this.opts.positions === true ? addPositions : (t: Tensor): Tensor => t;
    let h = op.add(this.attn1.forward(pos(this.norm1.forward(x))), x);
    const n2 = pos(this.norm2.forward(h));
    if (this.opts.crossAttentionDim !== null) {
      if (!context)
        throw new KinemaError(
          'UNET_BAD_INPUT',
          'BasicTransformerBlock: cross-attention needs encoder hidden states',
        );
      const states = context.spatial ? context.spatial(this, context.states) : context.states;
      h = op.add(crossAttentionOverFrames(this.attn2, n2, states, context.frames), h);
      if (context.extraCrossAttention) h = op.add(context.extraCrossAttention(this, n2, context.frames), h);
    } else {
      h = op.add(this.attn2.forward(n2), h);
    }
    if (this.attnText && this.normText) {
      if (!text)
        throw new KinemaError('UNET_BAD_INPUT', 'BasicTransformerBlock: attn_text needs the text states');
      const q = pos(this.normText.forward(h));
      h = op.add(crossAttentionOverFrames(this.attnText, q, text.states, text.frames), h);
    }
    return op.add(this.ff.forward(this.norm3.forward(h)), h);
  }
}

export interface TransformerOptions {
  inChannels: number;
  heads: number;
  dimHead: number;
  groups: number;
  /** Temporal transformers only: sinusoidal frame positions in the block (Kinema's `temporal_positions`). */
  positions?: boolean;
  /** Temporal transformers only: attention to the text of this width (Kinema's `temporal_text_attention`). */
  textAttentionDim?: number | null;
}

/** Per-frame spatial transformer with linear projections (use_linear_projection=True), one block. */
export class Transformer2DModel extends Module {
  readonly norm: GroupNorm;
  readonly projIn: Linear;
  readonly blocks: ModuleList<BasicTransformerBlock>;
  readonly projOut: Linear;
  constructor(opts: TransformerOptions & { crossAttentionDim: number }) {
    super();
    const inner = opts.heads * opts.dimHead;
    this.norm = this.child('norm', new GroupNorm(opts.groups, opts.inChannels, 1e-6));
    this.projIn = this.child('proj_in', new Linear(opts.inChannels, inner));
    const block = new BasicTransformerBlock({
      dim: inner,
      heads: opts.heads,
      dimHead: opts.dimHead,
      crossAttentionDim: opts.crossAttentionDim,
    });
    this.blocks = this.child('transformer_blocks', new ModuleList([block]));
    this.projOut = this.child('proj_out', new Linear(inner, opts.inChannels));
  }
  /** x [B·F, C, H, W] → same shape; attends to `context` (per video). */
  forward(x: Tensor, context: FrameContext): Tensor {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    let y = op.reshape(op.transpose(this.norm.forward(x), [0, 2, 3, 1]), [n, h * w, c]);
    y = this.projIn.forward(y);
    for (const block of this.blocks.items) y = block.forward(y, context);
    y = this.projOut.forward(y);
    return op.add(op.transpose(op.reshape(y, [n, h, w, c]), [0, 3, 1, 2]), x);
  }
}

/**
 * Temporal transformer: group norm over each video's (channels-in-group, frames, pixels), then one block of
 * two self-attentions over the F frames of every pixel (double_self_attention), residual around it all.
 */
export class TransformerTemporalModel extends Module {
  readonly norm: GroupNorm;
  readonly projIn: Linear;
  readonly blocks: ModuleList<BasicTransformerBlock>;
  readonly projOut: Linear;
  constructor(opts: TransformerOptions) {
    super();
    const inner = opts.heads * opts.dimHead;
    this.norm = this.child('norm', new GroupNorm(opts.groups, opts.inChannels, 1e-6));
    this.projIn = this.child('proj_in', new Linear(opts.inChannels, inner));
    const block = new BasicTransformerBlock({
      dim: inner,
      heads: opts.heads,
      dimHead: opts.dimHead,
      crossAttentionDim: null,
      positions: opts.positions === true,
      textAttentionDim: opts.textAttentionDim ?? null,
    });
    this.blocks = this.child('transformer_blocks', new ModuleList([block]));
    this.projOut = this.child('proj_out', new Linear(inner, opts.inChannels));
  }
  /** x [B·F, C, H, W] → same shape; `text` [B, S, D] is required when the block attends to the text. */
  forward(x: Tensor, frames: number, text?: Tensor): Tensor {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const b = n / frames;
    const video = op.transpose(op.reshape(x, [b, frames, c, h * w]), [0, 2, 1, 3]); // [B, C, F, HW]
    const normed = op.transpose(this.norm.forward(video), [0, 3, 2, 1]); // [B, HW, F, C]
    let y = this.projIn.forward(op.reshape(normed, [b * h * w, frames, c]));
    const perVideo = text ? { states: text, frames: h * w } : undefined;
    for (const block of this.blocks.items) y = block.forward(y, undefined, perVideo);
    y = this.projOut.forward(y);
    const back = op.transpose(op.reshape(y, [b, h * w, frames, c]), [0, 2, 3, 1]); // [B, F, C, HW]
    return op.add(op.reshape(back, x.shape), x);
  }
}
