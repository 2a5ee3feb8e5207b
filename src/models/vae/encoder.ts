// diffusers' VAE Encoder: conv_in → DownEncoderBlock2D × n → UNetMidBlock2D → GroupNorm → SiLU → conv_out,
// producing 2 × latent_channels moments (mean and log-variance).
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Conv2d, ConvNd, GroupNorm } from '../../nn/layers.js';
import { DownEncoderBlock2D, UNetMidBlock2D } from './blocks.js';
import type { BlockSettings } from './blocks.js';
import type { VaeConfig } from './config.js';

export class Encoder extends Module {
  private readonly convIn: ConvNd;
  private readonly downBlocks: ModuleList<DownEncoderBlock2D>;
  private readonly midBlock: UNetMidBlock2D;
  private readonly convNormOut: GroupNorm;
  private readonly convOut: ConvNd;

  constructor(cfg: VaeConfig) {
    super();
    const ch = cfg.blockOutChannels;
    const s: BlockSettings = { groups: cfg.normNumGroups, eps: 1e-6, act: cfg.actFn };
    const last = ch[ch.length - 1]!;
    this.convIn = this.child('conv_in', Conv2d(cfg.inChannels, ch[0]!, { kernel: 3, padding: 1 }));
    const blocks = ch.map(
      (out, i) =>
        new DownEncoderBlock2D(i === 0 ? ch[0]! : ch[i - 1]!, out, cfg.layersPerBlock, i < ch.length - 1, s),
    );
    this.downBlocks = this.child('down_blocks', new ModuleList(blocks));
    this.midBlock = this.child('mid_block', new UNetMidBlock2D(last, s, cfg.midBlockAddAttention));
    this.convNormOut = this.child('conv_norm_out', new GroupNorm(cfg.normNumGroups, last, 1e-6));
    this.convOut = this.child('conv_out', Conv2d(last, 2 * cfg.latentChannels, { kernel: 3, padding: 1 }));
  }

  /** images [N, in_channels, H, W] → moments [N, 2·latent_channels, H/f, W/f]. */
  forward(x: Tensor): Tensor {
    let h = this.convIn.forward(x);
    for (const b of this.downBlocks.items) h = b.forward(h);
    h = this.midBlock.forward(h);
    return this.convOut.forward(op.silu(this.convNormOut.forward(h))); // conv_act is always SiLU
  }
}
