// UNet3DConditionModel (diffusers v0.35.2; ModelScope text-to-video, VideoCrafter): predicts the noise of a
// video latent [B, C, F, H, W] at a timestep, conditioned on text encoder states [B, S, D]. Frames are folded
// into the batch (row b·F+f) for the 2-d layers; temporal layers unfold them.
import type { Tensor, InputSpec } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { hostTensor } from '../../engine/runtime.js';
import type { HostTensor } from '../../engine/runtime.js';
import type { Shape } from '../../engine/ir.js';
import { Module, ModuleList, StateDictError } from '../../nn/module.js';
import type { StateDict } from '../../nn/module.js';
import { Conv2d, GroupNorm } from '../../nn/layers.js';
import type { ConvNd } from '../../nn/layers.js';
import { compileWithWeights } from '../../nn/compile.js';
import type { CompiledFunction } from '../../nn/compile.js';
import { loadStateDict, readConfig } from '../../io/model_folder.js';
import type { FileLoader } from '../../io/loader.js';
import { UNet3DConfigError, parseUNet3DConfig } from './config.js';
import type { UNet3DConfig } from './config.js';
import { activation } from './activations.js';
import { TimestepEmbedding, sinusoidalEmbedding } from './embeddings.js';
import { TransformerTemporalModel } from './transformer.js';
import { DownBlock3D, UNetMidBlock3DCrossAttn, UpBlock3D } from './blocks.js';
import type { BlockConditioning, BlockSettings } from './blocks.js';
import type { ExtraCrossAttentionFn, SpatialContextFn } from './transformer.js';
import { KinemaError } from '../../errors.js';

export interface UNet3DForwardOptions {
  /** Frame rate [B] or [1]/[] (broadcast), for models with `fps_cond`. */
  fps?: Tensor;
  /** Condition added through `time_embedding.cond_proj` (models with `time_cond_proj_dim`). */
  timestepCond?: Tensor;
  /** If given, filled with named intermediate tensors (diffusers module names, e.g. 'down_blocks.0'). */
  intermediates?: Record<string, Tensor>;
  /**
   * The context of each spatial cross-attention (default: the encoder hidden states for all of them); the
   * temporal text attention keeps the text. StreamingT2V's APM mixes the anchor frame's tokens in per layer.
   */
  spatialContext?: SpatialContextFn;
  /** A second branch added to every spatial cross-attention (decoupled image attention, src/models/i2v/). */
  extraCrossAttention?: ExtraCrossAttentionFn;
}

type Recorder = (name: string, t: Tensor) => Tensor;

/** The traced forward between stages (see `UNet3DConditionModel.begin`). */
export interface UNet3DState {
  /** Features [B·F, C, h, w] after the last stage run. */
  hidden: Tensor;
  readonly skips: Tensor[];
  readonly cond: BlockConditioning;
  readonly rec: Recorder;
  readonly batch: number;
  readonly frames: number;
  readonly height: number;
  readonly width: number;
  forwardSize: boolean | null;
}

/** A timestep-like input of shape [], [1] or [batch] as a [batch] vector. */
function toBatch(t: Tensor, batch: number, what: string): Tensor {
  if (t.rank === 0 || (t.rank === 1 && t.shape[0] === 1)) return op.expand(op.reshape(t, [1]), [batch]);
  if (t.rank === 1 && t.shape[0] === batch) return t;
  throw new KinemaError(
    'UNET_BAD_INPUT',
    `UNet3D: ${what} must have shape [], [1] or [${batch}] (the batch), got [${t.shape.join(', ')}]`,
  );
}

export class UNet3DConditionModel extends Module {
  readonly convIn: ConvNd;
  readonly timeEmbedding: TimestepEmbedding;
  readonly fpsEmbedding: TimestepEmbedding | null;
  readonly transformerIn: TransformerTemporalModel;
  readonly downBlocks: DownBlock3D[];
  readonly midBlock: UNetMidBlock3DCrossAttn;
  readonly upBlocks: UpBlock3D[];
  readonly convNormOut: GroupNorm | null;
  readonly convOut: ConvNd | null;
  #weights: StateDict | null = null;
  readonly #programs = new Map<string, Promise<CompiledFunction>>();

  /**
   * `encoderOnly`: only conv_in, the embeddings, transformer_in, the down blocks and the mid block (under the
   * same names), for a trainable copy of the encoder half (StreamingT2V's CAM, a ControlNet-style copy); such
   * a model runs begin → down → mid only.
   */
  constructor(
    readonly config: UNet3DConfig,
    readonly opts: { encoderOnly?: boolean } = {},
  ) {
    super();
    const c = config;
    const ch = c.blockOutChannels;
    const n = ch.length;
    const tembChannels = ch[0]! * 4;
    this.convIn = this.child('conv_in', Conv2d(c.inChannels, ch[0]!, { kernel: 3, padding: 1 }));
    this.timeEmbedding = this.child(
      'time_embedding',
      new TimestepEmbedding(ch[0]!, tembChannels, c.actFn, c.timeCondProjDim),
    );
    this.fpsEmbedding = c.fpsCond
      ? this.child('fps_embedding', new TimestepEmbedding(ch[0]!, tembChannels, c.actFn))
      : null;
    const transformerIn = {
      inChannels: ch[0]!,
      heads: 8,
      dimHead: c.attentionHeadDim,
      groups: c.normNumGroups,
      positions: c.temporalPositions,
      textAttentionDim: c.temporalTextAttention ? c.crossAttentionDim : null,
    };
    this.transformerIn = this.child('transformer_in', new TransformerTemporalModel(transformerIn));
    const s: BlockSettings = {
      tembChannels,
      groups: c.normNumGroups,
      eps: c.normEps,
      act: c.actFn,
      crossAttentionDim: c.crossAttentionDim,
      headDim: c.attentionHeadDim,
      temporalPositions: c.temporalPositions,
      temporalTextAttention: c.temporalTextAttention,
    };
    this.downBlocks = c.downBlockTypes.map((type, i) => {
      const cin = ch[Math.max(i - 1, 0)]!;
      return new DownBlock3D(type, cin, ch[i]!, c.layersPerBlock, i < n - 1, c.downsamplePadding, s);
    });
    this.child('down_blocks', new ModuleList(this.downBlocks));
    const mid = { ...s, outputScaleFactor: c.midBlockScaleFactor };
    this.midBlock = this.child('mid_block', new UNetMidBlock3DCrossAttn(ch[n - 1]!, mid));
    if (opts.encoderOnly) {
      [this.upBlocks, this.convNormOut, this.convOut] = [[], null, null];
      return;
    }
    const rev = [...ch].reverse();
    this.upBlocks = c.upBlockTypes.map((type, i) => {
      const prevOut = rev[Math.max(i - 1, 0)]!;
      const cin = rev[Math.min(i + 1, n - 1)]!;
      return new UpBlock3D(type, cin, prevOut, rev[i]!, c.layersPerBlock + 1, i < n - 1, s);
    });
    this.child('up_blocks', new ModuleList(this.upBlocks));
    this.convNormOut = this.child('conv_norm_out', new GroupNorm(c.normNumGroups, ch[0]!, c.normEps));
    this.convOut = this.child('conv_out', Conv2d(ch[0]!, c.outChannels, { kernel: 3, padding: 1 }));
  }

  /** A model with this config.json object's architecture and no weights yet (see initParameters/loadWeights). */
  static fromConfig(config: Record<string, unknown>): UNet3DConditionModel {
    return new UNet3DConditionModel(parseUNet3DConfig(config));
  }

  /** Loads `dir/config.json` and the folder's safetensors weights (F16/BF16 are upcast to float32). */
  static async fromPretrained(
    dir: string,
    opts: { variant?: 'fp16' | 'bf16' | null; loader?: FileLoader } = {},
  ): Promise<UNet3DConditionModel> {
    let model: UNet3DConditionModel;
    try {
      model = UNet3DConditionModel.fromConfig(readConfig(dir, opts.loader));
    } catch (e) {
      if (e instanceof UNet3DConfigError) throw new UNet3DConfigError(`${dir}/config.json: ${e.message}`);
      throw e;
    }
    const loaded = loadStateDict(dir, {
      ...(opts.variant !== undefined && { variant: opts.variant }),
      ...(opts.loader && { loader: opts.loader }),
    });
    model.loadWeights(loaded.stateDict, loaded.shapes, dir);
    return model;
  }

  /** Binds weights after a strict check (missing, unexpected or mis-shaped keys throw StateDictError). */
  loadWeights(sd: StateDict, shapes?: ReadonlyMap<string, Shape>, source?: string): void {
    try {
      this.validateStateDict(sd, shapes ? { shapes } : {});
    } catch (e) {
      if (e instanceof StateDictError && source) throw new StateDictError(`${source}: ${e.message}`);
      throw e;
    }
    this.#weights = sd;
    this.#programs.clear();
  }

  /** Fresh seeded weights (module default initializers), bound to this model and returned. */
  override initParameters(seed = 0): StateDict {
    const sd = super.initParameters(seed);
    this.loadWeights(sd);
    return sd;
  }

  /** The bound weights (for compiling bigger programs around `forward`). */
  get stateDict(): StateDict {
    if (!this.#weights)
      throw new KinemaError(
        'UNET_BAD_INPUT',
        'UNet3DConditionModel has no weights: use fromPretrained, loadWeights or initParameters',
      );
    return this.#weights;
  }

  /** The traced forward: noise prediction [B, outC, F, H, W]. */
  forward(
    sample: Tensor,
    timestep: Tensor,
    encoderHiddenStates: Tensor,
    opts: UNet3DForwardOptions = {},
  ): Tensor {
    const s = this.begin(sample, timestep, encoderHiddenStates, opts);
    this.down(s);
    this.mid(s);
    for (let i = 0; i < this.upBlocks.length; i++) this.up(s, i);
    return this.end(s);
  }

  /**
   * The forward in stages (begin → down → mid → up(0…n−1) → end), each updating `state.hidden` [B·F, C, h, w],
   * so that another network can read or change the features between blocks (DSDN's interaction blocks run
   * between two UNets' stages, src/models/dsdn/).
   */
  begin(
    sample: Tensor,
    timestep: Tensor,
    encoderHiddenStates: Tensor,
    opts: UNet3DForwardOptions = {},
  ): UNet3DState {
    const [b, , frames, height, width] = this.checkInputs(sample, encoderHiddenStates);
    const rec: Recorder = (name, t) => {
      if (opts.intermediates) opts.intermediates[name] = t;
      return t;
    };
    const emb = this.embedTime(timestep, b, opts, rec);
    const cond: BlockConditioning = {
      tembAct: activation(emb, this.config.actFn),
      context: {
        states: encoderHiddenStates,
        frames,
        ...(opts.spatialContext && { spatial: opts.spatialContext }),
        ...(opts.extraCrossAttention && { extraCrossAttention: opts.extraCrossAttention }),
      },
    };
    let h = op.reshape(op.transpose(sample, [0, 2, 1, 3, 4]), [
      b * frames,
      this.config.inChannels,
      height,
      width,
    ]);
    h = rec('conv_in', this.convIn.forward(h));
    h = rec('transformer_in', this.transformerIn.forward(h, frames, encoderHiddenStates));
    return { hidden: h, skips: [h], cond, rec, batch: b, frames, height, width, forwardSize: null };
  }

  down(s: UNet3DState): void {
    this.downBlocks.forEach((block, i) => {
      const out = block.forward(s.hidden, s.cond);
      s.hidden = s.rec(`down_blocks.${i}`, out.hidden);
      s.skips.push(...out.residuals);
    });
    // Sizes that are not multiples of the total upsampling factor: each upsampler targets its skip's size.
    const factor = 2 ** this.upBlocks.filter((b) => b.upsampler).length;
    const first = s.skips[0]!.shape;
    s.forwardSize = first[2]! % factor !== 0 || first[3]! % factor !== 0;
  }

  mid(s: UNet3DState): void {
    s.hidden = s.rec('mid_block', this.midBlock.forward(s.hidden, s.cond));
  }

  up(s: UNet3DState, i: number): void {
    const block = this.upBlocks[i]!;
    const res = s.skips.splice(s.skips.length - block.numLayers, block.numLayers);
    const isFinal = i === this.upBlocks.length - 1;
    const size = !isFinal && s.forwardSize ? s.skips[s.skips.length - 1]!.shape.slice(2) : undefined;
    s.hidden = s.rec(`up_blocks.${i}`, block.forward(s.hidden, res, s.cond, size));
  }

  end(s: UNet3DState): Tensor {
    if (!this.convNormOut || !this.convOut)
      throw new KinemaError(
        'UNET_BAD_INPUT',
        'UNet3D: an encoder-only copy has no output layers (run begin/down/mid)',
      );
    let h = s.rec('conv_norm_out', this.convNormOut.forward(s.hidden));
    h = s.rec('conv_out', this.convOut.forward(op.silu(h)));
    const { batch: b, frames, height, width } = s;
    return op.transpose(op.reshape(h, [b, frames, this.config.outChannels, height, width]), [0, 2, 1, 3, 4]);
  }

  private checkInputs(sample: Tensor, ehs: Tensor): [number, number, number, number, number] {
    const c = this.config;
    if (sample.rank !== 5 || sample.shape[1] !== c.inChannels || sample.dtype !== 'float32') {
      throw new KinemaError(
        'UNET_BAD_INPUT',
        `UNet3D: sample must be float32 [B, ${c.inChannels}, F, H, W], got ${sample.toString()}`,
      );
    }
    const b = sample.shape[0]!;
    if (
      ehs.rank !== 3 ||
      ehs.shape[0] !== b ||
      ehs.shape[2] !== c.crossAttentionDim ||
      ehs.dtype !== 'float32'
    ) {
      throw new KinemaError(
        'UNET_BAD_INPUT',
        `UNet3D: encoder hidden states must be float32 [${b}, S, ${c.crossAttentionDim}] for sample ${sample.toString()}, got ${ehs.toString()}`,
      );
    }
    return sample.shape as [number, number, number, number, number];
  }

  private embedTime(timestep: Tensor, batch: number, opts: UNet3DForwardOptions, rec: Recorder): Tensor {
    const dim = this.config.blockOutChannels[0]!;
    const sinusoid = (t: Tensor): Tensor =>
      sinusoidalEmbedding(t, dim, { flipSinToCos: true, downscaleFreqShift: 0 });
    const tProj = rec('time_proj', sinusoid(toBatch(timestep, batch, 'timestep')));
    let emb = rec('time_embedding', this.timeEmbedding.forward(tProj, opts.timestepCond));
    if (this.fpsEmbedding) {
      if (!opts.fps)
        throw new KinemaError(
          'UNET_BAD_INPUT',
          'UNet3D: this model has fps_cond; pass the frame rate (opts.fps)',
        );
      emb = op.add(
        emb,
        rec('fps_embedding', this.fpsEmbedding.forward(sinusoid(toBatch(opts.fps, batch, 'fps')))),
      );
    } else if (opts.fps) {
      throw new KinemaError(
        'UNET_BAD_INPUT',
        'UNet3D: an fps was given but the model has no fps conditioning (config fps_cond is off)',
      );
    }
    return emb;
  }

  /** Host call: compiles one program per input signature (cached) and runs it. */
  async run(
    sample: HostTensor,
    timestep: HostTensor | number,
    encoderHiddenStates: HostTensor,
    opts: { fps?: number } = {},
  ): Promise<HostTensor> {
    const weights = this.stateDict;
    const feeds: Record<string, HostTensor> = {
      sample,
      timestep: typeof timestep === 'number' ? hostTensor(Float32Array.of(timestep), [1]) : timestep,
      encoder_hidden_states: encoderHiddenStates,
    };
    if (opts.fps !== undefined) feeds['fps'] = hostTensor(Float32Array.of(opts.fps), [1]);
    const specs: InputSpec[] = Object.entries(feeds).map(([name, t]) => ({
      name,
      shape: t.shape,
      dtype: t.dtype,
    }));
    const key = specs.map((s) => `${s.name}:${s.dtype ?? 'float32'}[${s.shape.join(',')}]`).join(';');
    let compiled = this.#programs.get(key);
    if (!compiled) {
      const fn = (x: Tensor, t: Tensor, ehs: Tensor, fps?: Tensor): Tensor =>
        this.forward(x, t, ehs, fps ? { fps } : {});
      compiled = compileWithWeights(fn, specs, weights);
      this.#programs.set(key, compiled);
      compiled.catch(() => this.#programs.delete(key));
    }
    const out = await (await compiled).exe.run(feeds);
    return out['out0']!;
  }
}
