// StreamingT2V's Appearance Preservation Module (Henschel et al. 2024, §4.2): the long-term memory of a long
// video. The pooled CLIP image embedding of an anchor frame (the first frame of the first chunk) becomes K image
// tokens (Linear → SiLU → Linear); every spatial cross-attention l of the base then attends to
// x_cross = x_text + SiLU(α_l)·x_mixed,l with x_mixed,l = LayerNorm_l(Conv1d_l(text ‖ image)) mixing the T + K
// tokens into T (per layer, as the release). α_l starts at 0 and SiLU(0) = 0, so an untrained APM leaves the
// base exactly as it was (tested), and each layer learns how much appearance it wants.
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module } from '../../nn/module.js';
import { ConvNd, LayerNorm, Linear } from '../../nn/layers.js';
import { KinemaError } from '../../errors.js';

/** Linear → SiLU → Linear, under the release's names (`context_embedding.0`, `.2`; `.1` is the SiLU). */
class ContextEmbedding extends Module {
  readonly first: Linear;
  readonly second: Linear;
  constructor(embedDim: number, hidden: number, out: number) {
    super();
    this.first = this.child('0', new Linear(embedDim, hidden));
    this.second = this.child('2', new Linear(hidden, out));
  }
  forward(x: Tensor): Tensor {
    return this.second.forward(op.silu(this.first.forward(x)));
  }
}

/** pooled image embedding [B, E] → image tokens [B, K, D] (the release's `ImgEmbContextResampler`). */
export class ImageTokenResampler extends Module {
  readonly mlp: ContextEmbedding;
  constructor(
    embedDim: number,
    hidden: number,
    readonly dim: number,
    readonly tokens: number,
  ) {
    super();
    this.mlp = this.child('context_embedding', new ContextEmbedding(embedDim, hidden, dim * tokens));
  }
  forward(embeds: Tensor): Tensor {
    return op.reshape(this.mlp.forward(embeds), [embeds.shape[0]!, this.tokens, this.dim]);
  }
}

/**
 * One spatial cross-attention's APM layer (the release keeps conv, conv_ln and alpha in each attn2):
 * x_cross = text + SiLU(α)·LayerNorm(Conv1d_{T+K→T}(text ‖ image)), the conv sliding (kernel 3, 'same'
 * padding) along the feature axis with the tokens as channels.
 */
export class ApmLayer extends Module {
  readonly conv: ConvNd;
  readonly convLn: LayerNorm;
  constructor(
    readonly textTokens: number,
    readonly imageTokens: number,
    dim: number,
  ) {
    super();
    this.conv = this.child(
      'conv',
      new ConvNd(1, textTokens + imageTokens, textTokens, { kernel: 3, padding: 1 }),
    );
    this.convLn = this.child('conv_ln', new LayerNorm(dim));
    this.declare('alpha', [1], { kind: 'zeros' });
  }
  /** text [B, T, D] (the base's own context), image tokens [B, K, D] → the layer's context [B, T, D]. */
  forward(text: Tensor, image: Tensor): Tensor {
    if (text.shape[1] !== this.textTokens || image.shape[1] !== this.imageTokens)
      throw new KinemaError(
        'STREAMING_BAD_INPUT',
        `APM: expected ${this.textTokens} text and ${this.imageTokens} image tokens, got ${text.toString()} and ${image.toString()}`,
      );
    const mixed = this.convLn.forward(this.conv.forward(op.concat([text, image], 1)));
    return op.add(text, op.mul(mixed, op.silu(this.p('alpha'))));
  }
}

export function expectDim(x: Tensor, d: number, what: string): void {
  if (x.shape[x.rank - 1] !== d)
    throw new KinemaError('STREAMING_BAD_INPUT', `APM: ${what} ${x.toString()} must end in width ${d}`);
}
