// DSDN's dual-stream transformation interaction (Liu et al. 2023, §3, Fig. 3): at a matching resolution each
// stream attends to the other's features with a cross-attention, and adds the result to its own. Per frame: row
// n of the content features [N, C, h, w] (frame f of video b, n = b·F + f) attends to row n of the motion
// features, token by token over the h·w positions, and the other way round. The output projections start at
// zero, so an untrained block passes both streams through unchanged (tested).
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module } from '../../nn/module.js';
import { LayerNorm } from '../../nn/layers.js';
import { Attention } from '../../nn/attention.js';
import { KinemaError } from '../../errors.js';

function toTokens(x: Tensor): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  return op.transpose(op.reshape(x, [n, c, h * w]), [0, 2, 1]);
}

function fromTokens(t: Tensor, like: Tensor): Tensor {
  const [n, c, h, w] = like.shape as [number, number, number, number];
  return op.reshape(op.transpose(t, [0, 2, 1]), [n, c, h, w]);
}

export class InteractionBlock extends Module {
  readonly normContent: LayerNorm;
  readonly normMotion: LayerNorm;
  readonly contentFromMotion: Attention;
  readonly motionFromContent: Attention;
  constructor(
    readonly channels: number,
    heads: number,
  ) {
    super();
    if (channels % heads !== 0)
      throw new KinemaError(
        'DSDN_BAD_CONFIG',
        `DSDN interaction: ${channels} channels do not split into ${heads} heads`,
      );
    const attn = { queryDim: channels, heads, dimHead: channels / heads, zeroOut: true };
    this.normContent = this.child('norm_content', new LayerNorm(channels));
    this.normMotion = this.child('norm_motion', new LayerNorm(channels));
    this.contentFromMotion = this.child('content_from_motion', new Attention(attn));
    this.motionFromContent = this.child('motion_from_content', new Attention(attn));
  }

  /** Both streams' features [N, C, h, w] (same N: frames folded into the batch), each updated by the other. */
  forward(content: Tensor, motion: Tensor): [Tensor, Tensor] {
    if (content.shape.join() !== motion.shape.join() || content.shape[1] !== this.channels)
      throw new KinemaError(
        'DSDN_BAD_CONFIG',
        `DSDN interaction: content ${content.toString()} and motion ${motion.toString()} must both be ` +
          `[N, ${this.channels}, h, w]`,
      );
    const c = this.normContent.forward(toTokens(content));
    const m = this.normMotion.forward(toTokens(motion));
    const toContent = fromTokens(this.contentFromMotion.forward(c, m), content);
    const toMotion = fromTokens(this.motionFromContent.forward(m, c), motion);
    return [op.add(content, toContent), op.add(motion, toMotion)];
  }
}
