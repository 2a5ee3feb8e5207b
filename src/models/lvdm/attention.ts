// VideoCrafter's (LVDM's) attention layers with the release's parameter names: CrossAttention (optionally with
// learned relative positions over frames, `relative_position_k/v.embeddings_table`, and with VideoCrafter1's
// decoupled image cross-attention `to_k_ip/to_v_ip`), the transformer block, and the spatial and temporal
// transformers. Activations follow the rest of the UNet: [B·F, C, H, W] with frames folded into the batch.
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module, ModuleList } from '../../nn/module.js';
import { GroupNorm, LayerNorm, Linear } from '../../nn/layers.js';
import { Attention } from '../../nn/attention.js';
import { FeedForward } from '../unet3d/transformer.js';
import { LVDM_TEXT_TOKENS } from './config.js';
import { KinemaError } from '../../errors.js';

/** A 1×1 Conv1d/Conv2d (weight [out, in, 1(, 1)]) applied to the last axis, i.e. a Linear with a conv's weight shape. */
class PointwiseConv extends Module {
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    dims: 1 | 2,
  ) {
    super();
    const bound = 1 / Math.sqrt(inChannels);
    this.declare('weight', [outChannels, inChannels, ...new Array<number>(dims).fill(1)], {
      kind: 'uniform',
      bound,
    });
    this.declare('bias', [outChannels], { kind: 'uniform', bound });
  }
  forward(x: Tensor): Tensor {
    const w = op.reshape(this.p('weight'), [this.outChannels, this.inChannels]);
    return op.add(op.matmul(x, op.transpose(w, [1, 0])), this.p('bias'));
  }
}

/** RelativePosition: a table of 2·L+1 learned vectors, looked up by the clipped distance k − q. */
class RelativePosition extends Module {
  constructor(
    readonly units: number,
    readonly maxRelative: number,
  ) {
    super();
    this.declare('embeddings_table', [2 * maxRelative + 1, units], { kind: 'normal', std: 0.02 });
  }
  /** [lq, lk, units]: the table row of clamp(k − q, −L, L) + L for every pair, as a one-hot matmul. */
  forward(lq: number, lk: number): Tensor {
    const rows = 2 * this.maxRelative + 1;
    const onehot = new Float32Array(lq * lk * rows);
    for (let q = 0; q < lq; q++) {
      for (let k = 0; k < lk; k++) {
        const d = Math.max(-this.maxRelative, Math.min(this.maxRelative, k - q)) + this.maxRelative;
        onehot[(q * lk + k) * rows + d] = 1;
      }
    }
    const table = op.matmul(op.constant(onehot, [lq * lk, rows]), this.p('embeddings_table'));
    return op.reshape(table, [lq, lk, this.units]);
  }
}

export interface CrossAttentionOptions {
  queryDim: number;
  /** Context width; absent: self-attention. */
  contextDim?: number;
  heads: number;
  dimHead: number;
  /** Learned relative positions over this many frames (temporal attention of the t2v release). */
  relativeLength?: number;
  /** VideoCrafter1's image cross-attention on the context tokens after the text's 77. */
  imageAttention?: boolean;
}

/** LVDM CrossAttention: to_q/to_k/to_v (no bias), to_out.0; plus the optional relative-position and image parts. */
export class LvdmCrossAttention extends Attention {
  readonly relK: RelativePosition | null = null;
  readonly relV: RelativePosition | null = null;
  readonly toKIp: Linear | null = null;
  readonly toVIp: Linear | null = null;
  /** Strength of the image attention (VideoCrafter's `image_cross_attention_scale`, 1.0 in the release). */
  imageScale = 1;
  constructor(readonly o: CrossAttentionOptions) {
    super({
      queryDim: o.queryDim,
      heads: o.heads,
      dimHead: o.dimHead,
      ...(o.contextDim ? { crossAttentionDim: o.contextDim } : {}),
    });
    if (o.relativeLength !== undefined) {
      this.relK = this.child('relative_position_k', new RelativePosition(o.dimHead, o.relativeLength));
      this.relV = this.child('relative_position_v', new RelativePosition(o.dimHead, o.relativeLength));
    }
    if (o.imageAttention === true) {
      const inner = o.heads * o.dimHead;
      this.toKIp = this.child('to_k_ip', new Linear(o.contextDim ?? o.queryDim, inner, false));
      this.toVIp = this.child('to_v_ip', new Linear(o.contextDim ?? o.queryDim, inner, false));
    }
  }

  /**
   * x [N, L, queryDim]; context [N, S, contextDim] (self-attention when absent); `bias` [1, 1, L, L] additive
   * (the causal mask). With image attention the context is [text (77) | image tokens].
   */
  override forward(x: Tensor, context?: Tensor, bias?: Tensor): Tensor {
    let ctx = context ?? x;
    let image: Tensor | null = null;
    if (this.toKIp && context) {
      const s = context.shape[1]!;
      if (s <= LVDM_TEXT_TOKENS)
        throw new KinemaError(
          'LVDM_BAD_INPUT',
          `image cross-attention needs ${LVDM_TEXT_TOKENS} text tokens + image tokens, got ${s}`,
        );
      [ctx, image] = op.split(context, [LVDM_TEXT_TOKENS, s - LVDM_TEXT_TOKENS], 1) as [Tensor, Tensor];
    }
    const q = this.toQ.forward(x);
    const k = this.toK.forward(ctx);
    const v = this.toV.forward(ctx);
    let out = this.relK
      ? this.#relativeAttention(q, k, v, bias)
      : op.multiHeadAttention(q, k, v, this.heads, bias ? { bias } : {});
    if (image && this.toKIp && this.toVIp) {
      const ip = op.multiHeadAttention(q, this.toKIp.forward(image), this.toVIp.forward(image), this.heads);
      out = op.add(out, this.imageScale === 1 ? ip : op.mul(ip, this.imageScale));
    }
    return this.toOut.at(0).forward(out);
  }

  /** softmax((q·kᵀ + q·rkᵀ)·scale) · (v + rv), with rk/rv the relative-position vectors of each (query, key) pair. */
  #relativeAttention(q: Tensor, k: Tensor, v: Tensor, bias?: Tensor): Tensor {
    const [n, l, inner] = q.shape as [number, number, number];
    const s = k.shape[1]!;
    const h = this.heads;
    const d = inner / h;
    const heads = (t: Tensor, len: number): Tensor =>
      op.transpose(op.reshape(t, [n, len, h, d]), [0, 2, 1, 3]);
    const [qh, kh, vh] = [heads(q, l), heads(k, s), heads(v, s)];
    const scale = 1 / Math.sqrt(d);
    // Per query position t: [N·H, d] @ [d, S] — batched over t by moving it to the front.
    const qByT = op.transpose(op.reshape(qh, [n * h, l, d]), [1, 0, 2]); // [L, N·H, d]
    const rk = this.relK!.forward(l, s); // [L, S, d]
    const relSim = op.transpose(op.matmul(qByT, op.transpose(rk, [0, 2, 1])), [1, 0, 2]); // [N·H, L, S]
    let sim = op.add(op.matmul(qh, op.transpose(kh, [0, 1, 3, 2])), op.reshape(relSim, [n, h, l, s]));
    sim = op.mul(sim, scale);
    if (bias) sim = op.add(sim, bias);
    const p = op.softmax(sim, -1); // [N, H, L, S]
    const pByT = op.transpose(op.reshape(p, [n * h, l, s]), [1, 0, 2]); // [L, N·H, S]
    const relOut = op.transpose(op.matmul(pByT, this.relV!.forward(l, s)), [1, 0, 2]); // [N·H, L, d]
    const o = op.add(op.matmul(p, vh), op.reshape(relOut, [n, h, l, d]));
    return op.reshape(op.transpose(o, [0, 2, 1, 3]), [n, l, inner]);
  }
}

export interface LvdmBlockOptions {
  dim: number;
  heads: number;
  dimHead: number;
  /** attn2's context width; null: attn2 is a second self-attention (temporal blocks). */
  contextDim: number | null;
  relativeLength?: number;
  imageAttention?: boolean;
}

/** BasicTransformerBlock: x + attn1(norm1 x), + attn2(norm2 x, context), + ff(norm3 x) (GEGLU). */
export class LvdmTransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn1: LvdmCrossAttention;
  readonly norm2: LayerNorm;
  readonly attn2: LvdmCrossAttention;
  readonly norm3: LayerNorm;
  readonly ff: FeedForward;
  constructor(o: LvdmBlockOptions) {
    super();
    const rel = o.relativeLength !== undefined ? { relativeLength: o.relativeLength } : {};
    this.attn1 = this.child(
      'attn1',
      new LvdmCrossAttention({ queryDim: o.dim, heads: o.heads, dimHead: o.dimHead, ...rel }),
    );
    this.ff = this.child('ff', new FeedForward(o.dim));
    this.attn2 = this.child(
      'attn2',
      new LvdmCrossAttention({
        queryDim: o.dim,
        heads: o.heads,
        dimHead: o.dimHead,
        ...(o.contextDim !== null ? { contextDim: o.contextDim } : {}),
        ...rel,
        imageAttention: o.imageAttention === true,
      }),
    );
    this.norm1 = this.child('norm1', new LayerNorm(o.dim));
    this.norm2 = this.child('norm2', new LayerNorm(o.dim));
    this.norm3 = this.child('norm3', new LayerNorm(o.dim));
  }
  /**
   * x [N, L, dim]. With `context` [B, S, D] and `rowsPerContext` = N / B (the frames of a video), attn2 attends a
   * video's rows as one sequence of queries to its context (the release repeats the context per frame: same keys).
   */
  forward(x: Tensor, context?: Tensor, bias?: Tensor, rowsPerContext = 1): Tensor {
    let h = op.add(this.attn1.forward(this.norm1.forward(x), undefined, bias), x);
    const n2 = this.norm2.forward(h);
    if (context && rowsPerContext > 1) {
      const [n, l, dim] = n2.shape as [number, number, number];
      const perVideo = this.attn2.forward(
        op.reshape(n2, [n / rowsPerContext, rowsPerContext * l, dim]),
        context,
      );
      h = op.add(op.reshape(perVideo, h.shape), h);
    } else {
      h = op.add(this.attn2.forward(n2, context, bias), h);
    }
    return op.add(this.ff.forward(this.norm3.forward(h)), h);
  }
}

export interface LvdmTransformerOptions {
  inChannels: number;
  heads: number;
  dimHead: number;
  depth: number;
  useLinear: boolean;
}

/** SpatialTransformer: per frame, GroupNorm(32, eps 1e-6) → proj_in → blocks (cross-attention to the text) → proj_out, + x. */
export class SpatialTransformer extends Module {
  readonly norm: GroupNorm;
  readonly projIn: Linear | PointwiseConv;
  readonly blocks: ModuleList<LvdmTransformerBlock>;
  readonly projOut: Linear | PointwiseConv;
  constructor(o: LvdmTransformerOptions & { contextDim: number; imageAttention: boolean }) {
    super();
    const inner = o.heads * o.dimHead;
    this.norm = this.child('norm', new GroupNorm(32, o.inChannels, 1e-6));
    this.projIn = this.child(
      'proj_in',
      o.useLinear ? new Linear(o.inChannels, inner) : new PointwiseConv(o.inChannels, inner, 2),
    );
    const blocks = Array.from(
      { length: o.depth },
      () =>
        new LvdmTransformerBlock({
          dim: inner,
          heads: o.heads,
          dimHead: o.dimHead,
          contextDim: o.contextDim,
          imageAttention: o.imageAttention,
        }),
    );
    this.blocks = this.child('transformer_blocks', new ModuleList(blocks));
    this.projOut = this.child(
      'proj_out',
      o.useLinear ? new Linear(inner, o.inChannels) : new PointwiseConv(inner, o.inChannels, 2),
    );
  }
  /** x [B·F, C, H, W]; context [B, S, D] per video (the release repeats it per frame: the same keys). */
  forward(x: Tensor, context: Tensor, frames: number): Tensor {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    let y = this.projIn.forward(op.reshape(op.transpose(this.norm.forward(x), [0, 2, 3, 1]), [n, h * w, c]));
    for (const block of this.blocks.items) y = block.forward(y, context, undefined, frames);
    y = this.projOut.forward(y);
    return op.add(op.transpose(op.reshape(y, [n, h, w, c]), [0, 3, 1, 2]), x);
  }
}

/** TemporalTransformer (self-attention only, as released): per pixel, attention over the F frames, + x. */
export class TemporalTransformer extends Module {
  readonly norm: GroupNorm;
  readonly projIn: Linear | PointwiseConv;
  readonly blocks: ModuleList<LvdmTransformerBlock>;
  readonly projOut: Linear | PointwiseConv;
  constructor(o: LvdmTransformerOptions & { relativeLength?: number; causal: boolean }) {
    super();
    const inner = o.heads * o.dimHead;
    this.causal = o.causal;
    this.norm = this.child('norm', new GroupNorm(32, o.inChannels, 1e-6));
    this.projIn = this.child(
      'proj_in',
      o.useLinear ? new Linear(o.inChannels, inner) : new PointwiseConv(o.inChannels, inner, 1),
    );
    const rel = o.relativeLength !== undefined ? { relativeLength: o.relativeLength } : {};
    const blocks = Array.from(
      { length: o.depth },
      () =>
        new LvdmTransformerBlock({
          dim: inner,
          heads: o.heads,
          dimHead: o.dimHead,
          contextDim: null,
          ...rel,
        }),
    );
    this.blocks = this.child('transformer_blocks', new ModuleList(blocks));
    this.projOut = this.child(
      'proj_out',
      o.useLinear ? new Linear(inner, o.inChannels) : new PointwiseConv(inner, o.inChannels, 1),
    );
  }
  readonly causal: boolean;
  /** x [B·F, C, H, W] → same shape. */
  forward(x: Tensor, frames: number): Tensor {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const b = n / frames;
    const video = op.transpose(op.reshape(x, [b, frames, c, h * w]), [0, 2, 1, 3]); // [B, C, F, HW]
    const normed = op.transpose(this.norm.forward(video), [0, 3, 2, 1]); // [B, HW, F, C]
    let y = this.projIn.forward(op.reshape(normed, [b * h * w, frames, c]));
    let bias: Tensor | undefined;
    if (this.causal) {
      // The release fills masked logits with −finfo(float32).max; softmax makes those weights exactly zero too.
      const m = new Float32Array(frames * frames);
      for (let i = 0; i < frames; i++)
        for (let j = i + 1; j < frames; j++) m[i * frames + j] = -3.4028234663852886e38;
      bias = op.constant(m, [1, 1, frames, frames]);
    }
    for (const block of this.blocks.items) y = block.forward(y, undefined, bias);
    y = this.projOut.forward(y);
    const back = op.transpose(op.reshape(y, [b, h * w, frames, c]), [0, 2, 3, 1]); // [B, F, C, HW]
    return op.add(op.reshape(back, x.shape), x);
  }
}
