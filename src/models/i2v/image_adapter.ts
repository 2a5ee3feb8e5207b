// VideoCrafter1's image-to-video conditioning (Chen et al. 2023, §3.2) as an adapter on a diffusers UNet3D
// (Kinema's default model): the CLIP vision tower's tokens of the input image (its last layer, before the final
// LayerNorm) → the release's query-transformer resampler (`image_proj_model.*`, src/models/lvdm/image_proj.ts) →
// Q image tokens; every spatial cross-attention l adds a decoupled image attention to its text attention before
// the output projection: to_out(attn(q, text) + s·attn(q, image; to_k_ip_l, to_v_ip_l)). The release
// initialises the _ip projections from the text ones; Kinema starts to_v_ip at zero, so an untrained adapter
// leaves the base model's prediction unchanged (tested), and trains only the adapter (base frozen).
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Linear } from '../../nn/layers.js';
import { UNet3DConditionModel } from '../unet3d/unet3d.js';
import type { UNet3DConfig } from '../unet3d/config.js';
import type { BasicTransformerBlock } from '../unet3d/transformer.js';
import { LvdmResampler } from '../lvdm/image_proj.js';
import type { LvdmResamplerConfig } from '../lvdm/image_proj.js';
import { spatialCrossAttentionBlocks } from '../streaming/streaming_unet.js';
import { KinemaError } from '../../errors.js';

export interface ImageAdapterConfig {
  readonly resampler: LvdmResamplerConfig;
}

/** The decoupled image attention's own key/value projections of one cross-attention layer. */
export class IpProjections extends Module {
  readonly toK: Linear;
  readonly toV: Linear;
  constructor(contextDim: number, inner: number) {
    super();
    this.toK = this.child('to_k_ip', new Linear(contextDim, inner, false));
    this.toV = this.child('to_v_ip', new Linear(contextDim, inner, false, 'zeros'));
  }
}

export class ImageAdapter extends Module {
  readonly resampler: LvdmResampler;
  readonly ip: IpProjections[];
  constructor(
    readonly unetConfig: UNet3DConfig,
    readonly config: ImageAdapterConfig,
  ) {
    super();
    const r = config.resampler;
    if (r.outputDim !== unetConfig.crossAttentionDim)
      throw new KinemaError(
        'I2V_BAD_CONFIG',
        `image adapter: resampler output ${r.outputDim} ≠ the UNet's cross_attention_dim ${unetConfig.crossAttentionDim}`,
      );
    this.resampler = this.child('image_proj_model', new LvdmResampler(r));
    const blocks = spatialCrossAttentionBlocks(new UNet3DConditionModel(unetConfig));
    this.ip = blocks.map(
      (b) => new IpProjections(unetConfig.crossAttentionDim, b.attn2.heads * b.attn2.dimHead),
    );
    this.child('ip_layers', new ModuleList(this.ip));
  }

  /**
   * The UNet3D hook of `base` for image tokens [B, N, E] (the vision tower's) at image scale `scale` [B] (0 in a
   * row: that row ignores the image). Returns the options to pass to `base.forward`.
   */
  conditioning(
    base: UNet3DConditionModel,
    visionTokens: Tensor,
    scale: Tensor,
  ): { extraCrossAttention: (block: BasicTransformerBlock, normed: Tensor, frames: number) => Tensor } {
    const blocks = spatialCrossAttentionBlocks(base);
    if (blocks.length !== this.ip.length)
      throw new KinemaError(
        'I2V_BAD_CONFIG',
        `image adapter: ${this.ip.length} layers for ${blocks.length} cross-attentions`,
      );
    const index = new Map(blocks.map((b, i) => [b, i]));
    const image = this.resampler.forward(visionTokens); // [B, Q, D]
    const b = image.shape[0]!;
    return {
      extraCrossAttention: (block, normed, frames) => {
        const l = index.get(block);
        if (l === undefined)
          throw new KinemaError('I2V_BAD_INPUT', 'image adapter: a cross-attention outside the base UNet');
        const [n, len, dim] = normed.shape as [number, number, number];
        if (n !== b * frames)
          throw new KinemaError(
            'I2V_BAD_INPUT',
            `image adapter: ${n} rows for ${b} images of ${frames} frames`,
          );
        const attn = block.attn2;
        const q = attn.toQ.forward(op.reshape(normed, [b, frames * len, dim]));
        const ip = this.ip[l]!;
        const a = op.multiHeadAttention(q, ip.toK.forward(image), ip.toV.forward(image), attn.heads);
        const out = op.mul(attn.toOut.at(0).forwardWithoutBias(a), op.reshape(scale, [b, 1, 1]));
        return op.reshape(out, normed.shape);
      },
    };
  }
}

/** Default-model sizes: a small resampler over the world CLIP's 65 tokens of width E. */
export function defaultImageAdapterConfig(unet: UNet3DConfig, embeddingDim: number): ImageAdapterConfig {
  const d = unet.crossAttentionDim;
  return {
    resampler: {
      dim: d,
      depth: 2,
      dimHead: 16,
      heads: Math.max(1, d / 16),
      numQueries: 16,
      embeddingDim,
      outputDim: d,
      ffMult: 4,
    },
  };
}

/** image_adapter/config.json (snake_case) → a checked config. */
export function parseImageAdapterConfig(
  raw: Record<string, unknown>,
  where = 'image_adapter/config.json',
): ImageAdapterConfig {
  const r = raw['resampler'];
  if (!r || typeof r !== 'object')
    throw new KinemaError('I2V_BAD_CONFIG', `${where}: "resampler" must be an object`);
  const o = r as Record<string, unknown>;
  const int = (k: string): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
      throw new KinemaError(
        'I2V_BAD_CONFIG',
        `${where}: "resampler.${k}" must be a positive integer, got ${JSON.stringify(v)}`,
      );
    return v;
  };
  return {
    resampler: {
      dim: int('dim'),
      depth: int('depth'),
      dimHead: int('dim_head'),
      heads: int('heads'),
      numQueries: int('num_queries'),
      embeddingDim: int('embedding_dim'),
      outputDim: int('output_dim'),
      ffMult: int('ff_mult'),
    },
  };
}

export function imageAdapterConfigJson(c: ImageAdapterConfig): Record<string, unknown> {
  const r = c.resampler;
  return {
    _class_name: 'ImageAdapter',
    resampler: {
      dim: r.dim,
      depth: r.depth,
      dim_head: r.dimHead,
      heads: r.heads,
      num_queries: r.numQueries,
      embedding_dim: r.embeddingDim,
      output_dim: r.outputDim,
      ff_mult: r.ffMult,
    },
  };
}
