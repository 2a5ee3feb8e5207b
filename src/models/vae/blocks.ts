// Building blocks of diffusers' AutoencoderKL (v0.35.2 semantics): ResnetBlock2D, Downsample2D (asymmetric
// zero padding then a stride-2 conv), Upsample2D (nearest 2× then a conv), the mid-block self-attention
// (group norm → single-head attention over H·W positions → residual) and the encoder/decoder blocks.
// Parameter names are the checkpoint's keys.
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Conv2d, ConvNd, GroupNorm } from '../../nn/layers.js';
import { Attention } from '../../nn/attention.js';
import type { Activation } from './config.js';
import { TemporalConvLayer } from './temporal.js';

/** diffusers' `get_activation`. */
export function activation(name: Activation): (x: Tensor) => Tensor {
  switch (name) {
    case 'silu':
    case 'swish':
      return op.silu;
    case 'relu':
      return op.relu;
    case 'gelu':
      return (x) => op.gelu(x, 'none');
    case 'mish':
      return (x) => op.mul(x, op.tanh(op.log(op.add(op.exp(x), 1))));
  }
}

/** Settings shared by every block of one encoder or decoder. */
export interface BlockSettings {
  readonly groups: number;
  readonly eps: number;
  readonly act: Activation;
}

/** ResnetBlock2D without a time embedding: norm1 → act → conv1 → norm2 → act → conv2, plus the shortcut. */
export class ResnetBlock2D extends Module {
  private readonly norm1: GroupNorm;
  private readonly conv1: ConvNd;
  private readonly norm2: GroupNorm;
  private readonly conv2: ConvNd;
  private readonly convShortcut: ConvNd | null;
  private readonly act: (x: Tensor) => Tensor;

  constructor(inChannels: number, outChannels: number, s: BlockSettings) {
    super();
    this.norm1 = this.child('norm1', new GroupNorm(s.groups, inChannels, s.eps));
    this.conv1 = this.child('conv1', Conv2d(inChannels, outChannels, { kernel: 3, padding: 1 }));
    this.norm2 = this.child('norm2', new GroupNorm(s.groups, outChannels, s.eps));
    this.conv2 = this.child('conv2', Conv2d(outChannels, outChannels, { kernel: 3, padding: 1 }));
    this.convShortcut =
      inChannels === outChannels
        ? null
        : this.child('conv_shortcut', Conv2d(inChannels, outChannels, { kernel: 1 }));
    this.act = activation(s.act);
  }

  forward(x: Tensor): Tensor {
    let h = this.conv1.forward(this.act(this.norm1.forward(x)));
    h = this.conv2.forward(this.act(this.norm2.forward(h)));
    const shortcut = this.convShortcut ? this.convShortcut.forward(x) : x;
    return op.add(shortcut, h); // output_scale_factor is 1 in the VAE
  }
}

/** Conv2d k=3, stride 2, with diffusers' (0, 1, 0, 1) zero padding folded into the conv's own padding. */
class StridedConv2d extends ConvNd {
  constructor(channels: number) {
    super(2, channels, channels, { kernel: 3, stride: 2, padding: 0 });
  }
  override forward(x: Tensor): Tensor {
    return op.conv(x, this.p('weight'), { strides: [2, 2], pads: [0, 0, 1, 1] }, this.p('bias'));
  }
}

/** Downsample2D(use_conv=True, padding=0): pad right/bottom by one, conv 3×3 stride 2. */
export class Downsample2D extends Module {
  private readonly conv: StridedConv2d;
  constructor(channels: number) {
    super();
    this.conv = this.child('conv', new StridedConv2d(channels));
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}

/** Upsample2D(use_conv=True): nearest-neighbour 2× then conv 3×3. */
export class Upsample2D extends Module {
  private readonly conv: ConvNd;
  constructor(channels: number) {
    super();
    this.conv = this.child('conv', Conv2d(channels, channels, { kernel: 3, padding: 1 }));
  }
  forward(x: Tensor): Tensor {
    const [, , h, w] = x.shape as [number, number, number, number];
    return this.conv.forward(op.resize(x, [2 * h, 2 * w], 'nearest'));
  }
}

/** The mid-block attention (`_from_deprecated_attn_block`): one head of `channels` dims, with group norm. */
export class SpatialSelfAttention extends Attention {
  private readonly groupNorm: GroupNorm;
  constructor(channels: number, s: BlockSettings) {
    super({ queryDim: channels, heads: 1, dimHead: channels, bias: true, outBias: true });
    this.groupNorm = this.child('group_norm', new GroupNorm(s.groups, channels, s.eps));
  }
  /** x [B, C, H, W] → x + attention(group_norm(x)) (rescale_output_factor is 1). */
  spatialForward(x: Tensor): Tensor {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    const tokens = op.transpose(op.reshape(this.groupNorm.forward(x), [b, c, h * w]), [0, 2, 1]);
    const out = op.reshape(op.transpose(this.forward(tokens), [0, 2, 1]), [b, c, h, w]);
    return op.add(out, x);
  }
}

/** UNetMidBlock2D (one layer): resnet → [attention] → resnet. */
export class UNetMidBlock2D extends Module {
  private readonly resnets: ModuleList<ResnetBlock2D>;
  private readonly attentions: ModuleList<SpatialSelfAttention> | null;
  constructor(channels: number, s: BlockSettings, addAttention: boolean) {
    super();
    this.resnets = this.child(
      'resnets',
      new ModuleList([new ResnetBlock2D(channels, channels, s), new ResnetBlock2D(channels, channels, s)]),
    );
    this.attentions = addAttention
      ? this.child('attentions', new ModuleList([new SpatialSelfAttention(channels, s)]))
      : null;
  }
  forward(x: Tensor): Tensor {
    let h = this.resnets.at(0).forward(x);
    if (this.attentions) h = this.attentions.at(0).spatialForward(h);
    return this.resnets.at(1).forward(h);
  }
}

/** DownEncoderBlock2D: `numLayers` resnets, then an optional Downsample2D. */
export class DownEncoderBlock2D extends Module {
  private readonly resnets: ModuleList<ResnetBlock2D>;
  private readonly downsamplers: ModuleList<Downsample2D> | null;
  constructor(
    inChannels: number,
    outChannels: number,
    numLayers: number,
    addDownsample: boolean,
    s: BlockSettings,
  ) {
    super();
    const resnets = Array.from(
      { length: numLayers },
      (_, i) => new ResnetBlock2D(i === 0 ? inChannels : outChannels, outChannels, s),
    );
    this.resnets = this.child('resnets', new ModuleList(resnets));
    this.downsamplers = addDownsample
      ? this.child('downsamplers', new ModuleList([new Downsample2D(outChannels)]))
      : null;
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const r of this.resnets.items) h = r.forward(h);
    return this.downsamplers ? this.downsamplers.at(0).forward(h) : h;
  }
}

/**
 * UpDecoderBlock2D: `numLayers` resnets, then an optional Upsample2D. With `temporal` (Kinema's VidRD
 * extension) each resnet is followed by a TemporalConvLayer over the frames folded into the batch.
 */
export class UpDecoderBlock2D extends Module {
  private readonly resnets: ModuleList<ResnetBlock2D>;
  private readonly tempConvs: ModuleList<TemporalConvLayer> | null;
  private readonly upsamplers: ModuleList<Upsample2D> | null;
  constructor(
    inChannels: number,
    outChannels: number,
    numLayers: number,
    addUpsample: boolean,
    s: BlockSettings,
    temporal: boolean,
  ) {
    super();
    const resnets = Array.from(
      { length: numLayers },
      (_, i) => new ResnetBlock2D(i === 0 ? inChannels : outChannels, outChannels, s),
    );
    this.resnets = this.child('resnets', new ModuleList(resnets));
    this.tempConvs = temporal
      ? this.child(
          'temp_convs',
          new ModuleList(
            Array.from({ length: numLayers }, () => new TemporalConvLayer(outChannels, s.groups)),
          ),
        )
      : null;
    this.upsamplers = addUpsample
      ? this.child('upsamplers', new ModuleList([new Upsample2D(outChannels)]))
      : null;
  }
  /** x [B·F, C, H, W] (frame index fastest, as diffusers folds videos); `numFrames` is F. */
  forward(x: Tensor, numFrames = 1): Tensor {
    let h = x;
    this.resnets.items.forEach((r, i) => {
      h = r.forward(h);
      if (this.tempConvs) h = this.tempConvs.at(i).forwardFolded(h, numFrames);
    });
    return this.upsamplers ? this.upsamplers.at(0).forward(h) : h;
  }
}
