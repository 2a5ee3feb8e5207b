// Residual blocks of the video UNet. Activations are [B·F, C, H, W] (frames folded into the batch, index b·F+f);
// the time embedding stays per video ([B, T]) and is broadcast over the frames instead of being repeated.
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module } from '../../nn/module.js';
import { Conv2d, GroupNorm, Linear } from '../../nn/layers.js';
import type { ConvNd } from '../../nn/layers.js';
import type { ActivationName } from './config.js';
import { activation } from './activations.js';

export interface ResnetOptions {
  inChannels: number;
  outChannels: number;
  tembChannels: number;
  groups: number;
  eps: number;
  act: ActivationName;
  outputScaleFactor: number;
}

/**
 * diffusers ResnetBlock2D ("default" time-embedding norm, pre-norm):
 * out = (shortcut(x) + conv2(act(norm2(conv1(act(norm1(x))) + proj(act(temb)))))) / outputScaleFactor.
 */
export class ResnetBlock2D extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: ConvNd;
  readonly timeEmbProj: Linear;
  readonly norm2: GroupNorm;
  readonly conv2: ConvNd;
  readonly convShortcut: ConvNd | null;
  constructor(readonly opts: ResnetOptions) {
    super();
    const { inChannels: cin, outChannels: cout, groups, eps } = opts;
    this.norm1 = this.child('norm1', new GroupNorm(groups, cin, eps));
    this.conv1 = this.child('conv1', Conv2d(cin, cout, { kernel: 3, padding: 1 }));
    this.timeEmbProj = this.child('time_emb_proj', new Linear(opts.tembChannels, cout));
    this.norm2 = this.child('norm2', new GroupNorm(groups, cout, eps));
    this.conv2 = this.child('conv2', Conv2d(cout, cout, { kernel: 3, padding: 1 }));
    this.convShortcut = cin !== cout ? this.child('conv_shortcut', Conv2d(cin, cout, { kernel: 1 })) : null;
  }

  /** x [B·F, Cin, H, W]; `tembAct` = act(time embedding) [B, T] (shared by every resnet). */
  forward(x: Tensor, tembAct: Tensor, frames: number): Tensor {
    const { act, outChannels: cout } = this.opts;
    let h = this.conv1.forward(activation(this.norm1.forward(x), act));
    const [n, , height, width] = h.shape as [number, number, number, number];
    const t = this.timeEmbProj.forward(tembAct);
    const perVideo = op.reshape(h, [n / frames, frames, cout, height * width]);
    h = op.reshape(op.add(perVideo, op.reshape(t, [n / frames, 1, cout, 1])), h.shape);
    h = this.conv2.forward(activation(this.norm2.forward(h), act));
    const skip = this.convShortcut ? this.convShortcut.forward(x) : x;
    const out = op.add(skip, h);
    return this.opts.outputScaleFactor === 1 ? out : op.div(out, this.opts.outputScaleFactor);
  }
}

/** A Conv3d with kernel (3, 1, 1) over frames, applied as a 2-d conv on [B, C, F, H·W] (same weights). */
class FrameConv extends Module {
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
  ) {
    super();
    const bound = 1 / Math.sqrt(inChannels * 3);
    this.declare('weight', [outChannels, inChannels, 3, 1, 1], { kind: 'uniform', bound });
    this.declare('bias', [outChannels], { kind: 'uniform', bound });
  }
  forward(x: Tensor): Tensor {
    const w = op.reshape(this.p('weight'), [this.outChannels, this.inChannels, 3, 1]);
    return op.conv(x, w, { pads: [1, 0, 1, 0] }, this.p('bias'));
  }
}

/** One `nn.Sequential(GroupNorm, SiLU, [Dropout,] Conv3d)` stage; children named as in the checkpoint. */
class TemporalConvStage extends Module {
  readonly norm: GroupNorm;
  readonly conv: FrameConv;
  constructor(cin: number, cout: number, groups: number, convIndex: number) {
    super();
    this.norm = this.child('0', new GroupNorm(groups, cin));
    this.conv = this.child(String(convIndex), new FrameConv(cin, cout));
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(op.silu(this.norm.forward(x)));
  }
}

/** ModelScope's temporal conv block: four (GroupNorm → SiLU → Conv over frames) stages plus identity. */
export class TemporalConvLayer extends Module {
  readonly stages: TemporalConvStage[];
  constructor(
    readonly channels: number,
    groups: number,
  ) {
    super();
    this.stages = [1, 2, 3, 4].map((i) =>
      this.child(`conv${i}`, new TemporalConvStage(channels, channels, groups, i === 1 ? 2 : 3)),
    );
  }
  /** x [B·F, C, H, W] → same shape. */
  forward(x: Tensor, frames: number): Tensor {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const video = op.transpose(op.reshape(x, [n / frames, frames, c, h * w]), [0, 2, 1, 3]);
    let y = video;
    for (const s of this.stages) y = s.forward(y);
    const out = op.add(video, y);
    return op.reshape(op.transpose(out, [0, 2, 1, 3]), x.shape);
  }
}
