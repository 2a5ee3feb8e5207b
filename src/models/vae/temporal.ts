// Kinema's VidRD ("Reuse and Diffuse") temporal decoder layer: ModelScope's TemporalConvLayer as VidRD
// inserts it after each ResnetBlock2D of the VAE decoder's up blocks. Three stages of
// GroupNorm → SiLU → Dropout → Conv3d with a (3, 1, 1) kernel (mixing neighbouring frames only) over
// [B, C, F, H, W], plus a residual; the last conv is zero-initialised, so a fresh layer is the identity.
// With a single frame the layer is skipped (VidRD: "ignore these convolution layers on image input").
// Dropout (p = 0.1 in VidRD) is an identity here: Kinema runs these layers in inference mode.
//
// Parameter names follow VidRD's flat nn.ModuleList, where SiLU/Dropout occupy indices without weights:
// convs.0 / convs.4 / convs.8 are the norms, convs.3 / convs.7 / convs.11 the convs.
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module } from '../../nn/module.js';
import type { ParamSpec } from '../../nn/module.js';
import { Conv3d, ConvNd, GroupNorm } from '../../nn/layers.js';
import { KinemaError } from '../../errors.js';

/** The zero-initialised last conv of a TemporalConvLayer (VidRD's `zero_module`). */
class ZeroInitConv3d extends ConvNd {
  constructor(channels: number) {
    super(3, channels, channels, { kernel: [3, 1, 1], padding: [1, 0, 0] });
  }
  override namedParameters(prefix = ''): Map<string, ParamSpec> {
    const params = super.namedParameters(prefix);
    for (const [name, spec] of params) params.set(name, { ...spec, init: { kind: 'zeros' } });
    return params;
  }
}

/** `convs` of a TemporalConvLayer: norm/conv pairs at VidRD's ModuleList indices. */
class TemporalConvStack extends Module {
  readonly norms: GroupNorm[] = [];
  readonly convs: ConvNd[] = [];
  constructor(channels: number, groups: number) {
    super();
    for (let stage = 0; stage < 3; stage++) {
      this.norms.push(this.child(String(4 * stage), new GroupNorm(groups, channels, 1e-5)));
      const conv =
        stage === 2
          ? new ZeroInitConv3d(channels)
          : Conv3d(channels, channels, { kernel: [3, 1, 1], padding: [1, 0, 0] });
      this.convs.push(this.child(String(4 * stage + 3), conv));
    }
  }
}

export class TemporalConvLayer extends Module {
  private readonly stack: TemporalConvStack;
  constructor(channels: number, groups: number) {
    super();
    this.stack = this.child('convs', new TemporalConvStack(channels, groups));
  }

  /** x [B, C, F, H, W] → x + convs(x); the identity when F = 1. */
  forward(x: Tensor): Tensor {
    if (x.shape[2] === 1) return x;
    let h = x;
    this.stack.norms.forEach((norm, i) => {
      h = this.stack.convs[i]!.forward(op.silu(norm.forward(h)));
    });
    return op.add(x, h);
  }

  /** The layer applied to frames folded into the batch: x [B·F, C, H, W] with frame index fastest. */
  forwardFolded(x: Tensor, numFrames: number): Tensor {
    if (numFrames === 1) return x;
    const [bf, c, h, w] = x.shape as [number, number, number, number];
    if (bf % numFrames !== 0) {
      throw new KinemaError(
        'VAE_BAD_INPUT',
        `temporal decoder: batch ${bf} is not a whole number of ${numFrames}-frame videos`,
      );
    }
    const video = op.transpose(op.reshape(x, [bf / numFrames, numFrames, c, h, w]), [0, 2, 1, 3, 4]);
    const out = this.forward(video);
    return op.reshape(op.transpose(out, [0, 2, 1, 3, 4]), [bf, c, h, w]);
  }
}
