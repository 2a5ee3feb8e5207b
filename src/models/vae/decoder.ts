// diffusers' VAE Decoder: conv_in → UNetMidBlock2D → UpDecoderBlock2D × n (layers_per_block + 1 resnets each)
// → GroupNorm → SiLU → conv_out. With `temporal_decoder` the up blocks carry VidRD temporal layers.
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Conv2d, ConvNd, GroupNorm } from '../../nn/layers.js';
import { UNetMidBlock2D, UpDecoderBlock2D } from './blocks.js';
import type { BlockSettings } from './blocks.js';
import type { VaeConfig } from './config.js';

export class Decoder extends Module {
  private readonly convIn: ConvNd;
  private readonly midBlock: UNetMidBlock2D;
  private readonly upBlocks: ModuleList<UpDecoderBlock2D>;
  private readonly convNormOut: GroupNorm;
  private readonly convOut: ConvNd;

  constructor(cfg: VaeConfig) {
    super();
    const rev = [...cfg.blockOutChannels].reverse();
    const s: BlockSettings = { groups: cfg.normNumGroups, eps: 1e-6, act: cfg.actFn };
    this.convIn = this.child('conv_in', Conv2d(cfg.latentChannels, rev[0]!, { kernel: 3, padding: 1 }));
    this.midBlock = this.child('mid_block', new UNetMidBlock2D(rev[0]!, s, cfg.midBlockAddAttention));
    const blocks = rev.map(
      (out, i) =>
        new UpDecoderBlock2D(
          i === 0 ? rev[0]! : rev[i - 1]!,
          out,
          cfg.layersPerBlock + 1,
          i < rev.length - 1,
          s,
          cfg.temporalDecoder,
        ),
    );
    this.upBlocks = this.child('up_blocks', new ModuleList(blocks));
    const first = cfg.blockOutChannels[0]!;
    this.convNormOut = this.child('conv_norm_out', new GroupNorm(cfg.normNumGroups, first, 1e-6));
    this.convOut = this.child('conv_out', Conv2d(first, cfg.outChannels, { kernel: 3, padding: 1 }));
  }

  /** z [B·F, latent_channels, h, w] → images [B·F, out_channels, h·f, w·f]; `numFrames` F feeds temporal layers. */
  forward(z: Tensor, numFrames = 1): Tensor {
    let h = this.midBlock.forward(this.convIn.forward(z));
    for (const b of this.upBlocks.items) h = b.forward(h, numFrames);
    return this.convOut.forward(op.silu(this.convNormOut.forward(h)));
  }
}
