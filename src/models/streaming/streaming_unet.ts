// The StreamingT2V denoiser: the frozen base UNet3D with the CAM (short-term memory, src/models/streaming/
// cam.ts) injected into its skip connections and mid block, and the APM (long-term memory, apm.ts) mixed into
// the context of each spatial cross-attention. The adapters' weights are their own state dict (streaming/ in a
// model folder), the base keeps its own (unet/); one traced forward runs both.
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module, ModuleList } from '../../nn/module.js';
import type { StateDict } from '../../nn/module.js';
import { UNet3DConditionModel } from '../unet3d/unet3d.js';
import type { UNet3DConfig } from '../unet3d/config.js';
import { BasicTransformerBlock } from '../unet3d/transformer.js';
import { CamEncoder, SkipMerger } from './cam.js';
import { ApmLayer, ImageTokenResampler, expectDim } from './apm.js';
import type { StreamingConfig } from './config.js';
import { KinemaError } from '../../errors.js';

/** The spatial cross-attention blocks of a UNet, in module order (the APM's α_l index). */
export function spatialCrossAttentionBlocks(unet: UNet3DConditionModel): BasicTransformerBlock[] {
  return [...unet.namedModules().values()].filter(
    (m): m is BasicTransformerBlock =>
      m instanceof BasicTransformerBlock && m.opts.crossAttentionDim !== null,
  );
}

/** Channels of the base's skip connections (conv_in / transformer_in, then every down-block residual). */
function skipChannels(c: UNet3DConfig): number[] {
  const ch = c.blockOutChannels;
  const out = [ch[0]!];
  ch.forEach((cout, i) => {
    for (let l = 0; l < c.layersPerBlock; l++) out.push(cout);
    if (i < ch.length - 1) out.push(cout); // the downsampler's output
  });
  return out;
}

/** The trainable StreamingT2V parts (CAM, mergers, APM), with the release's top-level names where it has them. */
export class StreamingAdapters extends Module {
  readonly cam: CamEncoder;
  readonly downMergers: SkipMerger[];
  readonly midMerger: SkipMerger;
  readonly resampler: ImageTokenResampler;
  readonly apmLayers: ApmLayer[];
  constructor(
    readonly unetConfig: UNet3DConfig,
    readonly config: StreamingConfig,
  ) {
    super();
    const u = unetConfig;
    this.cam = this.child('cam', new CamEncoder(u, config.condEmbeddingChannels));
    const merger = (c: number): SkipMerger => new SkipMerger(c, config.mergerHeads, u.normNumGroups);
    this.downMergers = skipChannels(u).map(merger);
    this.child('cross_attention_merger_down_blocks', new ModuleList(this.downMergers));
    this.midMerger = this.child(
      'cross_attention_merger_mid_block',
      merger(u.blockOutChannels[u.blockOutChannels.length - 1]!),
    );
    const d = u.crossAttentionDim;
    this.resampler = this.child(
      'resampler',
      new ImageTokenResampler(config.imageEmbedDim, u.blockOutChannels[0]! * 4, d, config.imageTokens),
    );
    const layers = spatialCrossAttentionBlocks(new UNet3DConditionModel(u)).length;
    this.apmLayers = Array.from(
      { length: layers },
      () => new ApmLayer(config.textTokens, config.imageTokens, d),
    );
    this.child('apm_layers', new ModuleList(this.apmLayers));
  }

  /**
   * Fresh adapters: the CAM copy from the base's weights (ControlNet's initialisation), everything else seeded,
   * E_cond's last conv at zero (the P_out of every merger and the α_l are zero by declaration).
   */
  initFrom(base: StateDict, seed = 0): StateDict {
    const sd = this.initParameters(seed);
    for (const key of sd.keys()) {
      if (!key.startsWith('cam.')) continue;
      const own = key.slice('cam.'.length);
      if (own.startsWith('controlnet_cond_embedding.')) continue;
      const w = base.get(own);
      if (!w)
        throw new KinemaError('STREAMING_BAD_CONFIG', `CAM: the base UNet has no weight '${own}' to copy`);
      sd.set(key, w.slice());
    }
    for (const k of ['weight', 'bias'])
      sd.set(
        `cam.controlnet_cond_embedding.conv_out.${k}`,
        new Float32Array(sd.get(`cam.controlnet_cond_embedding.conv_out.${k}`)!.length),
      );
    return sd;
  }
}

export interface StreamingInputs {
  /** Conditioning frames [B·F_cond, 3, H, W] in [−1, 1] (the previous chunk's last frames). */
  condFrames: Tensor;
  /** Pooled CLIP image embedding of the anchor frame [B, E]. */
  imageEmbeds: Tensor;
  /**
   * [B]: 1 where the row is conditioned on the frames, 0 where not (condition dropout, guidance that drops
   * them). The anchor is dropped as the release does: the embedding of an all-zero image.
   */
  gate: Tensor;
  fps?: Tensor;
}

/**
 * One StreamingT2V prediction: base(sample | text) with the CAM features of the sample's first F_cond frames
 * merged into every skip connection and the mid block, and the APM's mixed context in every spatial
 * cross-attention. `base` and `adapters` are separate module trees (weights keyed by their own paths).
 */
export function streamingForward(
  base: UNet3DConditionModel,
  adapters: StreamingAdapters,
  sample: Tensor,
  timestep: Tensor,
  text: Tensor,
  x: StreamingInputs,
): Tensor {
  const { condFrames: o, textTokens } = adapters.config;
  const frames = sample.shape[2]!;
  if (frames < o)
    throw new KinemaError(
      'STREAMING_BAD_INPUT',
      `StreamingT2V: a chunk of ${frames} frames cannot hold the ${o} conditioning frames`,
    );
  if (text.shape[1] !== textTokens)
    throw new KinemaError(
      'STREAMING_BAD_INPUT',
      `StreamingT2V: the text must have ${textTokens} tokens, got ${text.toString()}`,
    );
  expectDim(x.imageEmbeds, adapters.config.imageEmbedDim, 'image embedding');
  const blocks = spatialCrossAttentionBlocks(base);
  if (blocks.length !== adapters.apmLayers.length)
    throw new KinemaError(
      'STREAMING_BAD_CONFIG',
      `APM: ${adapters.apmLayers.length} layers for ${blocks.length} cross-attentions`,
    );
  const index = new Map(blocks.map((blk, i) => [blk, i]));
  const image = adapters.resampler.forward(x.imageEmbeds);
  const spatialContext = (block: BasicTransformerBlock, states: Tensor): Tensor => {
    const l = index.get(block);
    return l === undefined ? states : adapters.apmLayers[l]!.forward(states, image);
  };
  const t = timestep.rank === 0 ? op.reshape(timestep, [1]) : timestep;
  const camSample = op.slice(sample, [0], [o], [2]);
  const cam = adapters.cam.features(camSample, t, text, x.condFrames, x.fps);
  const s = base.begin(sample, t, text, { ...(x.fps && { fps: x.fps }), spatialContext });
  base.down(s);
  if (s.skips.length !== adapters.downMergers.length)
    throw new KinemaError(
      'STREAMING_BAD_CONFIG',
      `CAM: ${adapters.downMergers.length} mergers for ${s.skips.length} skips`,
    );
  s.skips.forEach((skip, i) => {
    s.skips[i] = adapters.downMergers[i]!.forward(skip, cam[i]!, frames, o, x.gate);
  });
  base.mid(s);
  s.hidden = adapters.midMerger.forward(s.hidden, cam[cam.length - 1]!, frames, o, x.gate);
  for (let i = 0; i < base.upBlocks.length; i++) base.up(s, i);
  return base.end(s);
}
