// StreamingT2V's Conditional Attention Module (Henschel et al. 2024, §4.1): the short-term memory of a long
// video. A frame encoder E_cond (ControlNet's conditioning embedding: stacked 2-d convs, the last one zero-
// initialised) encodes the F_cond conditioning frames — the last frames of the previous chunk — and a trainable
// copy of the base UNet's encoder half (conv_in, embeddings, transformer_in, down blocks, mid block; initialised
// from the base weights) turns them into features at every skip connection. Mergers (`SkipMerger`) inject those
// features into the frozen base's skip connections by temporal attention: every frame of the chunk attends to
// the F_cond conditioning frames at the same pixel, so content is borrowed without forcing the new frames'
// structure (the paper's argument against ControlNet's addition). Their output projections start at zero: an
// untrained CAM leaves the base model's prediction unchanged (tested). Layout and key names follow the released
// code (StreamingModelscope branch): the copy sees the chunk's first F_cond noisy frames, the time positions the
// conditioning frames hold, and frame i of the copy pairs with conditioning frame i.
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Conv2d, GroupNorm, Linear } from '../../nn/layers.js';
import type { ConvNd } from '../../nn/layers.js';
import { Attention } from '../../nn/attention.js';
import { UNet3DConditionModel } from '../unet3d/unet3d.js';
import type { UNet3DConfig } from '../unet3d/config.js';
import { KinemaError } from '../../errors.js';

/** E_cond: frames [N, 3, H, W] in [−1, 1] → features [N, C₀, H/2^k, W/2^k] (ControlNet's key names). */
export class FrameEncoder extends Module {
  readonly convIn: ConvNd;
  readonly blocks: ModuleList<ConvNd>;
  readonly convOut: ConvNd;
  constructor(channels: readonly number[], outChannels: number) {
    super();
    this.convIn = this.child('conv_in', Conv2d(3, channels[0]!, { kernel: 3, padding: 1 }));
    const blocks: ConvNd[] = [];
    for (let i = 0; i + 1 < channels.length; i++) {
      const [a, b] = [channels[i]!, channels[i + 1]!];
      blocks.push(Conv2d(a, a, { kernel: 3, padding: 1 }));
      blocks.push(Conv2d(a, b, { kernel: 3, padding: 1, stride: 2 }));
    }
    this.blocks = this.child('blocks', new ModuleList(blocks));
    this.convOut = this.child(
      'conv_out',
      Conv2d(channels[channels.length - 1]!, outChannels, { kernel: 3, padding: 1 }),
    );
  }
  forward(frames: Tensor): Tensor {
    let h = op.silu(this.convIn.forward(frames));
    for (const conv of this.blocks.items) h = op.silu(conv.forward(h));
    return this.convOut.forward(h);
  }
}

/** The CAM: E_cond plus the trainable copy of the base's encoder half, under the base's own key names. */
export class CamEncoder extends UNet3DConditionModel {
  readonly condEmbedding: FrameEncoder;
  constructor(unetConfig: UNet3DConfig, condEmbeddingChannels: readonly number[]) {
    super(unetConfig, { encoderOnly: true });
    this.condEmbedding = this.child(
      'controlnet_cond_embedding',
      new FrameEncoder(condEmbeddingChannels, unetConfig.blockOutChannels[0]!),
    );
  }

  /**
   * sample: the chunk's noisy latents of its first F_cond frames [B, C, F_cond, h, w] (the frames the
   * conditioning frames will occupy); condFrames [B·F_cond, 3, H, W]. Returns one feature map
   * [B·F_cond, C, h', w'] per base skip connection, in the base's order, then the mid block's output.
   */
  features(
    sample: Tensor,
    timestep: Tensor,
    text: Tensor,
    condFrames: Tensor,
    fps: Tensor | undefined,
  ): Tensor[] {
    const s = this.begin(sample, timestep, text, fps ? { fps } : {});
    const e = this.condEmbedding.forward(condFrames);
    if (e.shape.join() !== s.hidden.shape.join())
      throw new KinemaError(
        'STREAMING_BAD_INPUT',
        `CAM: conditioning frames ${condFrames.toString()} encode to ${e.toString()}, but the latents give ` +
          `${s.hidden.toString()} (frames must be the VAE factor times the latent size)`,
      );
    // The encoded frames join after the first temporal transformer (the paper: "fused by addition").
    s.hidden = op.add(s.hidden, e);
    s.skips[0] = s.hidden;
    this.down(s);
    this.mid(s);
    return [...s.skips, s.hidden];
  }
}

/** The merger's temporal transformer (the release's `temporal_transformer`): norm, P_in, T-MHA, P_out. */
export class MergerTransformer extends Module {
  readonly norm: GroupNorm;
  readonly projIn: Linear;
  readonly attention: Attention;
  readonly projOut: Linear;
  constructor(channels: number, heads: number, groups: number) {
    super();
    this.norm = this.child('norm', new GroupNorm(groups, channels, 1e-6));
    this.projIn = this.child('proj_in', new Linear(channels, channels));
    this.attention = this.child(
      'attention',
      new Attention({ queryDim: channels, heads, dimHead: channels / heads }),
    );
    this.projOut = this.child('proj_out', new Linear(channels, channels, true, 'zeros'));
  }
}

/**
 * One skip connection's injector: x_SC [B·F, C, h, w] (frames folded into the batch) attends, per pixel and
 * over frames, to the CAM features [B·F_cond, C, h, w] (as the release: raw, no norm or projection):
 *   x′ = P_in(GroupNorm_spatio-temporal(x_SC)),  x″ = T-MHA(Q = x′, K = V = x_CAM),
 *   out = x_SC + gate · P_out(x″)               (P_out zero-initialised; gate ∈ {0, 1} per video).
 * The gate lets one batch hold conditioned and unconditioned rows (condition dropout in training, guidance
 * that drops the frames). No frame positions, as in the release: the base's features already carry them.
 */
export class SkipMerger extends Module {
  readonly block: MergerTransformer;
  constructor(
    readonly channels: number,
    heads: number,
    groups: number,
  ) {
    super();
    if (channels % heads !== 0)
      throw new KinemaError(
        'STREAMING_BAD_CONFIG',
        `CAM merger: ${channels} channels do not split into ${heads} heads (streaming/config.json merger_heads)`,
      );
    this.block = this.child('temporal_transformer', new MergerTransformer(channels, heads, groups));
  }

  /** gate [B]: 1 where the video is conditioned on the frames, 0 where not. */
  forward(skip: Tensor, cam: Tensor, frames: number, condFrames: number, gate: Tensor): Tensor {
    const [n, c, h, w] = skip.shape as [number, number, number, number];
    const b = n / frames;
    if (cam.shape.join() !== [b * condFrames, c, h, w].join())
      throw new KinemaError(
        'STREAMING_BAD_INPUT',
        `CAM merger: features ${cam.toString()} do not match skip ${skip.toString()} with ${condFrames} frames`,
      );
    const t = this.block;
    // [B·f, C, h, w] → tokens [B·hw, f, C] (per pixel, over frames).
    const tokens = (x: Tensor, f: number): Tensor =>
      op.reshape(op.transpose(op.reshape(x, [b, f, c, h * w]), [0, 3, 1, 2]), [b * h * w, f, c]);
    const video = op.transpose(op.reshape(skip, [b, frames, c, h * w]), [0, 2, 1, 3]); // [B, C, F, hw]
    const normed = op.reshape(
      op.transpose(t.norm.forward(video), [0, 3, 2, 1]), // [B, hw, F, C]
      [b * h * w, frames, c],
    );
    const out = t.projOut.forward(t.attention.forward(t.projIn.forward(normed), tokens(cam, condFrames)));
    const back = op.reshape(op.transpose(op.reshape(out, [b, h * w, frames, c]), [0, 2, 3, 1]), [
      b,
      frames * c * h * w,
    ]);
    const gated = op.mul(back, op.reshape(gate, [b, 1]));
    return op.add(skip, op.reshape(gated, skip.shape));
  }
}
