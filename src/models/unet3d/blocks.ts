// The UNet3D's down, mid and up blocks (diffusers unet_3d_blocks): per layer a ResnetBlock2D, a temporal conv
// and, in the cross-attention variants, a spatial Transformer2DModel and a TransformerTemporalModel.
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Conv2d } from '../../nn/layers.js';
import type { ConvNd } from '../../nn/layers.js';
import type { ActivationName, DownBlockType, UpBlockType } from './config.js';
import { ResnetBlock2D, TemporalConvLayer } from './resnet.js';
import { Transformer2DModel, TransformerTemporalModel } from './transformer.js';
import type { FrameContext, TransformerOptions } from './transformer.js';
import { KinemaError } from '../../errors.js';

/** What every block receives besides its input: act(time embedding) [B, T] and the text context. */
export interface BlockConditioning {
  readonly tembAct: Tensor;
  readonly context: FrameContext;
}

/** Settings shared by all blocks of one UNet. */
export interface BlockSettings {
  tembChannels: number;
  groups: number;
  eps: number;
  act: ActivationName;
  crossAttentionDim: number;
  /** Per-block head size (diffusers' legacy `attention_head_dim`): heads = channels / headDim. */
  headDim: number;
  outputScaleFactor?: number;
  /** Sinusoidal frame positions in the temporal transformers (config `temporal_positions`). */
  temporalPositions?: boolean;
  /** Attention to the text in the temporal transformers (config `temporal_text_attention`). */
  temporalTextAttention?: boolean;
}

/** The temporal transformer options a block's settings imply. */
function temporalOptions(t: TransformerOptions, s: BlockSettings): TransformerOptions {
  return {
    ...t,
    positions: s.temporalPositions === true,
    textAttentionDim: s.temporalTextAttention === true ? s.crossAttentionDim : null,
  };
}

/**
 * diffusers' legacy layout: the blocks call Transformer2DModel(channels // attention_head_dim, attention_head_dim),
 * i.e. heads = channels / attention_head_dim, each of size attention_head_dim.
 */
export function attentionLayout(channels: number, headDim: number): { heads: number; dimHead: number } {
  return { heads: Math.floor(channels / headDim), dimHead: headDim };
}

/** Conv downsampler (stride 2); padding 0 pads one row/column at the bottom/right first, like diffusers. */
export class Downsample2D extends Module {
  readonly conv: ConvNd;
  constructor(
    channels: number,
    readonly padding: number,
  ) {
    super();
    this.conv = this.child('conv', Conv2d(channels, channels, { kernel: 3, stride: 2, padding }));
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(this.padding === 0 ? op.pad(x, [0, 0, 0, 0, 0, 0, 1, 1]) : x);
  }
}

/** Nearest 2× upsampling (or to an explicit size) followed by a 3×3 conv. */
export class Upsample2D extends Module {
  readonly conv: ConvNd;
  constructor(channels: number) {
    super();
    this.conv = this.child('conv', Conv2d(channels, channels, { kernel: 3, padding: 1 }));
  }
  forward(x: Tensor, size?: readonly number[]): Tensor {
    const [, , h, w] = x.shape as [number, number, number, number];
    return this.conv.forward(op.resize(x, size ?? [2 * h, 2 * w], 'nearest'));
  }
}

/** One resnet + temporal conv (+ spatial and temporal transformers) layer of a block. */
export class BlockLayer {
  constructor(
    readonly resnet: ResnetBlock2D,
    readonly tempConv: TemporalConvLayer,
    readonly attn: Transformer2DModel | null,
    readonly tempAttn: TransformerTemporalModel | null,
  ) {}
  forward(x: Tensor, cond: BlockConditioning): Tensor {
    const frames = cond.context.frames;
    let h = this.tempConv.forward(this.resnet.forward(x, cond.tembAct, frames), frames);
    if (this.attn) h = this.attn.forward(h, cond.context);
    if (this.tempAttn) h = this.tempAttn.forward(h, frames, cond.context.states);
    return h;
  }
}

/** Builds layer modules under the usual ModuleList names (resnets, temp_convs, attentions, temp_attentions). */
abstract class LayeredBlock extends Module {
  readonly layers: BlockLayer[];
  protected constructor(channels: Array<[number, number]>, crossAttention: boolean, s: BlockSettings) {
    super();
    const resnets = channels.map(
      ([cin, cout]) =>
        new ResnetBlock2D({
          inChannels: cin,
          outChannels: cout,
          tembChannels: s.tembChannels,
          groups: s.groups,
          eps: s.eps,
          act: s.act,
          outputScaleFactor: s.outputScaleFactor ?? 1,
        }),
    );
    const tempConvs = channels.map(([, cout]) => new TemporalConvLayer(cout, s.groups));
    this.child('resnets', new ModuleList(resnets));
    this.child('temp_convs', new ModuleList(tempConvs));
    let attns: Transformer2DModel[] = [];
    let tempAttns: TransformerTemporalModel[] = [];
    if (crossAttention) {
      const t = (c: number): TransformerOptions => ({
        inChannels: c,
        ...attentionLayout(c, s.headDim),
        groups: s.groups,
      });
      attns = channels.map(
        ([, c]) => new Transformer2DModel({ ...t(c), crossAttentionDim: s.crossAttentionDim }),
      );
      tempAttns = channels.map(([, c]) => new TransformerTemporalModel(temporalOptions(t(c), s)));
      this.child('attentions', new ModuleList(attns));
      this.child('temp_attentions', new ModuleList(tempAttns));
    }
    this.layers = resnets.map(
      (r, i) => new BlockLayer(r, tempConvs[i]!, attns[i] ?? null, tempAttns[i] ?? null),
    );
  }
}

export interface DownBlockOutput {
  hidden: Tensor;
  /** Skip connections, in the order diffusers appends them (each layer's output, then the downsampled one). */
  residuals: Tensor[];
}

/** CrossAttnDownBlock3D / DownBlock3D. */
export class DownBlock3D extends LayeredBlock {
  readonly downsampler: Downsample2D | null;
  constructor(
    type: DownBlockType,
    cin: number,
    cout: number,
    numLayers: number,
    addDownsample: boolean,
    downsamplePadding: number,
    s: BlockSettings,
  ) {
    const channels = Array.from({ length: numLayers }, (_, i): [number, number] => [
      i === 0 ? cin : cout,
      cout,
    ]);
    super(channels, type === 'CrossAttnDownBlock3D', s);
    this.downsampler = addDownsample ? new Downsample2D(cout, downsamplePadding) : null;
    if (this.downsampler) this.child('downsamplers', new ModuleList([this.downsampler]));
  }
  forward(x: Tensor, cond: BlockConditioning): DownBlockOutput {
    const residuals: Tensor[] = [];
    let h = x;
    for (const layer of this.layers) {
      h = layer.forward(h, cond);
      residuals.push(h);
    }
    if (this.downsampler) {
      h = this.downsampler.forward(h);
      residuals.push(h);
    }
    return { hidden: h, residuals };
  }
}

/** CrossAttnUpBlock3D / UpBlock3D: each layer first concatenates the matching skip connection. */
export class UpBlock3D extends LayeredBlock {
  readonly upsampler: Upsample2D | null;
  constructor(
    type: UpBlockType,
    cin: number,
    prevOut: number,
    cout: number,
    numLayers: number,
    addUpsample: boolean,
    s: BlockSettings,
  ) {
    const channels = Array.from({ length: numLayers }, (_, i): [number, number] => {
      const skip = i === numLayers - 1 ? cin : cout;
      return [(i === 0 ? prevOut : cout) + skip, cout];
    });
    super(channels, type === 'CrossAttnUpBlock3D', s);
    this.upsampler = addUpsample ? new Upsample2D(cout) : null;
    if (this.upsampler) this.child('upsamplers', new ModuleList([this.upsampler]));
  }
  get numLayers(): number {
    return this.layers.length;
  }
  /** `skips` are this block's skip connections, consumed from the last one. */
  forward(
    x: Tensor,
    skips: readonly Tensor[],
    cond: BlockConditioning,
    upsampleSize?: readonly number[],
  ): Tensor {
    if (skips.length !== this.layers.length)
      throw new KinemaError(
        'UNET_BAD_INPUT',
        `up block needs ${this.layers.length} skip connections, got ${skips.length}`,
      );
    let h = x;
    this.layers.forEach((layer, i) => {
      h = layer.forward(op.concat([h, skips[skips.length - 1 - i]!], 1), cond);
    });
    return this.upsampler ? this.upsampler.forward(h, upsampleSize) : h;
  }
}

/** UNetMidBlock3DCrossAttn (one layer): resnet + temporal conv, then transformers, resnet, temporal conv. */
export class UNetMidBlock3DCrossAttn extends Module {
  readonly first: BlockLayer;
  readonly attn: Transformer2DModel;
  readonly tempAttn: TransformerTemporalModel;
  readonly last: BlockLayer;
  constructor(channels: number, s: BlockSettings) {
    super();
    const resnet = (): ResnetBlock2D =>
      new ResnetBlock2D({
        inChannels: channels,
        outChannels: channels,
        tembChannels: s.tembChannels,
        groups: s.groups,
        eps: s.eps,
        act: s.act,
        outputScaleFactor: s.outputScaleFactor ?? 1,
      });
    const resnets = [resnet(), resnet()];
    const tempConvs = [new TemporalConvLayer(channels, s.groups), new TemporalConvLayer(channels, s.groups)];
    const t: TransformerOptions = {
      inChannels: channels,
      ...attentionLayout(channels, s.headDim),
      groups: s.groups,
    };
    this.attn = new Transformer2DModel({ ...t, crossAttentionDim: s.crossAttentionDim });
    this.tempAttn = new TransformerTemporalModel(temporalOptions(t, s));
    this.child('resnets', new ModuleList(resnets));
    this.child('temp_convs', new ModuleList(tempConvs));
    this.child('attentions', new ModuleList([this.attn]));
    this.child('temp_attentions', new ModuleList([this.tempAttn]));
    this.first = new BlockLayer(resnets[0]!, tempConvs[0]!, null, null);
    this.last = new BlockLayer(resnets[1]!, tempConvs[1]!, null, null);
  }
  forward(x: Tensor, cond: BlockConditioning): Tensor {
    const h = this.first.forward(x, cond);
    return this.last.forward(
      this.tempAttn.forward(this.attn.forward(h, cond.context), cond.context.frames, cond.context.states),
      cond,
    );
  }
}
