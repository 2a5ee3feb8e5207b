// The benchmark's video UNet down-block, the same structure as bench/peer_torch.py's VideoDownBlock:
// ResNet block (GroupNorm, SiLU, conv3×3, time-embedding projection) + spatial transformer with cross-attention
// + temporal transformer over frames.
import type { Tensor } from '../src/engine/tensor.js';
import * as op from '../src/engine/ops.js';
import { Attention, Conv2d, GroupNorm, LayerNorm, Linear, Module } from '../src/nn/index.js';
import type { ConvNd } from '../src/nn/index.js';

export interface VideoBlockConfig {
  c: number;
  heads: number;
  ctxDim: number;
  tembDim: number;
  frames: number;
  batch: number;
  hw: number;
  ctxLen: number;
}

class TransformerBlock extends Module {
  private readonly norm1: LayerNorm;
  private readonly attn1: Attention;
  private readonly norm2?: LayerNorm;
  private readonly attn2?: Attention;
  private readonly norm3: LayerNorm;
  private readonly ffIn: Linear;
  private readonly ffOut: Linear;
  constructor(dim: number, heads: number, ctxDim: number | null) {
    super();
    this.norm1 = this.child('norm1', new LayerNorm(dim));
    this.attn1 = this.child('attn1', new Attention({ queryDim: dim, heads, dimHead: dim / heads }));
    if (ctxDim !== null) {
      this.norm2 = this.child('norm2', new LayerNorm(dim));
      this.attn2 = this.child(
        'attn2',
        new Attention({ queryDim: dim, crossAttentionDim: ctxDim, heads, dimHead: dim / heads }),
      );
    }
    this.norm3 = this.child('norm3', new LayerNorm(dim));
    this.ffIn = this.child('ff_in', new Linear(dim, dim * 8));
    this.ffOut = this.child('ff_out', new Linear(dim * 4, dim));
  }
  forward(x: Tensor, ctx?: Tensor): Tensor {
    let h = op.add(x, this.attn1.forward(this.norm1.forward(x)));
    if (this.attn2 && this.norm2 && ctx) h = op.add(h, this.attn2.forward(this.norm2.forward(h), ctx));
    const [a, gate] = op.chunk(this.ffIn.forward(this.norm3.forward(h)), 2, -1) as [Tensor, Tensor];
    return op.add(h, this.ffOut.forward(op.mul(a, op.gelu(gate))));
  }
}

export class VideoDownBlock extends Module {
  private readonly n1: GroupNorm;
  private readonly c1: ConvNd;
  private readonly temb: Linear;
  private readonly n2: GroupNorm;
  private readonly c2: ConvNd;
  private readonly sn: GroupNorm;
  private readonly sin: Linear;
  private readonly sblock: TransformerBlock;
  private readonly sout: Linear;
  private readonly tn: GroupNorm;
  private readonly tin: Linear;
  private readonly tblock: TransformerBlock;
  private readonly tout: Linear;
  constructor(readonly cfg: VideoBlockConfig) {
    super();
    const c = cfg.c;
    this.n1 = this.child('n1', new GroupNorm(32, c));
    this.c1 = this.child('c1', Conv2d(c, c, { kernel: 3, padding: 1 }));
    this.temb = this.child('temb', new Linear(cfg.tembDim, c));
    this.n2 = this.child('n2', new GroupNorm(32, c));
    this.c2 = this.child('c2', Conv2d(c, c, { kernel: 3, padding: 1 }));
    this.sn = this.child('sn', new GroupNorm(32, c));
    this.sin = this.child('sin', new Linear(c, c));
    this.sblock = this.child('sblock', new TransformerBlock(c, cfg.heads, cfg.ctxDim));
    this.sout = this.child('sout', new Linear(c, c));
    this.tn = this.child('tn', new GroupNorm(32, c));
    this.tin = this.child('tin', new Linear(c, c));
    this.tblock = this.child('tblock', new TransformerBlock(c, cfg.heads, null));
    this.tout = this.child('tout', new Linear(c, c));
  }

  forward(x: Tensor, temb: Tensor, ctx: Tensor): Tensor {
    const [n, c, hh, ww] = x.shape as [number, number, number, number];
    const f = this.cfg.frames;
    const b = n / f;
    const h = op.add(
      this.c1.forward(op.silu(this.n1.forward(x))),
      op.reshape(this.temb.forward(op.silu(temb)), [n, c, 1, 1]),
    );
    let y = op.add(x, this.c2.forward(op.silu(this.n2.forward(h))));
    // Spatial transformer over the H·W tokens of each frame.
    let s = op.reshape(op.transpose(this.sn.forward(y), [0, 2, 3, 1]), [n, hh * ww, c]);
    s = this.sout.forward(this.sblock.forward(this.sin.forward(s), ctx));
    y = op.add(y, op.transpose(op.reshape(s, [n, hh, ww, c]), [0, 3, 1, 2]));
    // Temporal transformer over the frames of each spatial position.
    const yt = op.reshape(op.transpose(op.reshape(y, [b, f, c, hh, ww]), [0, 2, 1, 3, 4]), [
      b,
      c,
      f,
      hh * ww,
    ]);
    let t = op.reshape(op.transpose(this.tn.forward(yt), [0, 3, 2, 1]), [b * hh * ww, f, c]);
    t = this.tout.forward(this.tblock.forward(this.tin.forward(t)));
    const back = op.reshape(op.transpose(op.reshape(t, [b, hh, ww, f, c]), [0, 3, 4, 1, 2]), [n, c, hh, ww]);
    return op.add(y, back);
  }
}
