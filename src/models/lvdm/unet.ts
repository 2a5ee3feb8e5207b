// VideoCrafter's 3D UNet (lvdm/modules/networks/openaimodel3d.py UNetModel) with the release's key names:
// `input_blocks.N.M` (ResBlock · SpatialTransformer · TemporalTransformer, or a Downsample), `init_attn`,
// `middle_block`, `output_blocks`, `out`, `time_embed` and `fps_embedding`; ResBlocks keep the release's
// `temopral_conv` spelling. Activations are [B·F, C, H, W] (frames folded into the batch, row b·F+f).
import type { Tensor, InputSpec } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import type { HostTensor } from '../../engine/runtime.js';
import type { Shape } from '../../engine/ir.js';
import { Module, ModuleList } from '../../nn/module.js';
import type { StateDict } from '../../nn/module.js';
import { Conv2d, GroupNorm, Linear } from '../../nn/layers.js';
import type { ConvNd } from '../../nn/layers.js';
import { compileWithWeights } from '../../nn/compile.js';
import type { CompiledFunction } from '../../nn/compile.js';
import { sinusoidalEmbedding } from '../unet3d/embeddings.js';
import { TemporalConvLayer } from '../unet3d/resnet.js';
import { parseLvdmUNetConfig, type LvdmUNetConfig } from './config.js';
import { SpatialTransformer, TemporalTransformer } from './attention.js';
import { KinemaError } from '../../errors.js';

/** Children at fixed names with parameter-free slots between (an nn.Sequential). */
class Sequential extends Module {
  constructor(entries: ReadonlyArray<readonly [string, Module]>) {
    super();
    for (const [name, m] of entries) this.child(name, m);
  }
}

/** linear(0) → SiLU → linear(2): the time and fps embedding MLPs. */
class EmbedMlp extends Module {
  readonly l0: Linear;
  readonly l2: Linear;
  constructor(cin: number, cout: number) {
    super();
    this.l0 = this.child('0', new Linear(cin, cout));
    this.l2 = this.child('2', new Linear(cout, cout));
  }
  forward(x: Tensor): Tensor {
    return this.l2.forward(op.silu(this.l0.forward(x)));
  }
}

/** ResBlock: in_layers (GN, SiLU, conv) + emb_layers (SiLU, Linear), out_layers (GN, SiLU, dropout, conv), skip; then temopral_conv. */
class ResBlock extends Module {
  readonly inNorm: GroupNorm;
  readonly inConv: ConvNd;
  readonly emb: Linear;
  readonly outNorm: GroupNorm;
  readonly outConv: ConvNd;
  readonly skip: ConvNd | null;
  readonly temporal: TemporalConvLayer | null;
  constructor(
    readonly channels: number,
    readonly outChannels: number,
    embChannels: number,
    temporalConv: boolean,
  ) {
    super();
    this.inNorm = new GroupNorm(32, channels);
    this.inConv = Conv2d(channels, outChannels, { kernel: 3, padding: 1 });
    this.child(
      'in_layers',
      new Sequential([
        ['0', this.inNorm],
        ['2', this.inConv],
      ]),
    );
    this.emb = new Linear(embChannels, outChannels);
    this.child('emb_layers', new Sequential([['1', this.emb]]));
    this.outNorm = new GroupNorm(32, outChannels);
    this.outConv = Conv2d(outChannels, outChannels, { kernel: 3, padding: 1 });
    this.child(
      'out_layers',
      new Sequential([
        ['0', this.outNorm],
        ['3', this.outConv],
      ]),
    );
    this.skip =
      channels !== outChannels
        ? this.child('skip_connection', Conv2d(channels, outChannels, { kernel: 1 }))
        : null;
    this.temporal = temporalConv ? this.child('temopral_conv', new TemporalConvLayer(outChannels, 32)) : null;
  }
  /** x [B·F, C, H, W]; embAct = SiLU(emb) [B, E] per video. */
  forward(x: Tensor, embAct: Tensor, frames: number): Tensor {
    let h = this.inConv.forward(op.silu(this.inNorm.forward(x)));
    const [n, c, height, width] = h.shape as [number, number, number, number];
    const e = op.reshape(this.emb.forward(embAct), [n / frames, 1, c, 1]);
    h = op.reshape(op.add(op.reshape(h, [n / frames, frames, c, height * width]), e), h.shape);
    h = this.outConv.forward(op.silu(this.outNorm.forward(h)));
    h = op.add(this.skip ? this.skip.forward(x) : x, h);
    return this.temporal ? this.temporal.forward(h, frames) : h;
  }
}

class Downsample extends Module {
  readonly conv: ConvNd;
  constructor(ch: number) {
    super();
    this.conv = this.child('op', Conv2d(ch, ch, { kernel: 3, stride: 2, padding: 1 }));
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}

class Upsample extends Module {
  readonly conv: ConvNd;
  constructor(ch: number) {
    super();
    this.conv = this.child('conv', Conv2d(ch, ch, { kernel: 3, padding: 1 }));
  }
  forward(x: Tensor): Tensor {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    return this.conv.forward(op.resize(x, [2 * h, 2 * w], 'nearest'));
  }
}

type Layer = ResBlock | SpatialTransformer | TemporalTransformer | Downsample | Upsample | ConvNd;

/** TimestepEmbedSequential: each layer gets what it needs (emb for ResBlocks, context for spatial transformers). */
class EmbedSequential extends Module {
  constructor(readonly layers: Layer[]) {
    super();
    layers.forEach((l, i) => this.child(String(i), l));
  }
  forward(x: Tensor, embAct: Tensor, context: Tensor, frames: number): Tensor {
    let h = x;
    for (const l of this.layers) {
      if (l instanceof ResBlock) h = l.forward(h, embAct, frames);
      else if (l instanceof SpatialTransformer) h = l.forward(h, context, frames);
      else if (l instanceof TemporalTransformer) h = l.forward(h, frames);
      else h = l.forward(h);
    }
    return h;
  }
}

export interface LvdmForwardOptions {
  /** Frames per second [B] or [1] (models with fps_cond; the release's default is 16). */
  fps?: Tensor;
}

export class LvdmUNet extends Module {
  readonly timeEmbed: EmbedMlp;
  readonly fpsEmbedding: EmbedMlp | null;
  readonly inputBlocks: EmbedSequential[];
  readonly initAttn: EmbedSequential | null;
  readonly middleBlock: EmbedSequential;
  readonly outputBlocks: EmbedSequential[];
  readonly outNorm: GroupNorm;
  readonly outConv: ConvNd;
  #weights: StateDict | null = null;
  readonly #programs = new Map<string, Promise<CompiledFunction>>();

  constructor(readonly config: LvdmUNetConfig) {
    super();
    const c = config;
    const mc = c.modelChannels;
    const emb = mc * 4;
    this.timeEmbed = this.child('time_embed', new EmbedMlp(mc, emb));
    this.fpsEmbedding = c.fpsCond ? this.child('fps_embedding', new EmbedMlp(mc, emb)) : null;
    const relative = c.useRelativePosition ? { relativeLength: c.temporalLength } : {};
    const attentionAt = (ch: number): Layer[] => {
      const heads = ch / c.numHeadChannels;
      const t = { inChannels: ch, heads, dimHead: c.numHeadChannels, useLinear: c.useLinear };
      const layers: Layer[] = [
        new SpatialTransformer({
          ...t,
          depth: c.transformerDepth,
          contextDim: c.contextDim,
          imageAttention: c.useImageAttention,
        }),
      ];
      if (c.temporalAttention) {
        layers.push(
          new TemporalTransformer({
            ...t,
            depth: c.temporalTransformerDepth,
            ...relative,
            causal: c.useCausalAttention,
          }),
        );
      }
      return layers;
    };
    const input: EmbedSequential[] = [
      new EmbedSequential([Conv2d(c.inChannels, mc, { kernel: 3, padding: 1 })]),
    ];
    // init_attn: 8 heads of num_head_channels, 1×1-conv projections (use_linear is not passed in the release).
    this.initAttn = c.additionAttention
      ? this.child(
          'init_attn',
          new EmbedSequential([
            new TemporalTransformer({
              inChannels: mc,
              heads: 8,
              dimHead: c.numHeadChannels,
              depth: c.transformerDepth,
              useLinear: false,
              ...relative,
              causal: c.useCausalAttention,
            }),
          ]),
        )
      : null;
    const chans = [mc];
    let ch = mc;
    let ds = 1;
    c.channelMult.forEach((mult, level) => {
      for (let i = 0; i < c.numResBlocks; i++) {
        const layers: Layer[] = [new ResBlock(ch, mult * mc, emb, c.temporalConv)];
        ch = mult * mc;
        if (c.attentionResolutions.includes(ds)) layers.push(...attentionAt(ch));
        input.push(new EmbedSequential(layers));
        chans.push(ch);
      }
      if (level !== c.channelMult.length - 1) {
        input.push(new EmbedSequential([new Downsample(ch)]));
        chans.push(ch);
        ds *= 2;
      }
    });
    this.inputBlocks = this.child('input_blocks', new ModuleList(input)).items;
    this.middleBlock = this.child(
      'middle_block',
      new EmbedSequential([
        new ResBlock(ch, ch, emb, c.temporalConv),
        ...attentionAt(ch),
        new ResBlock(ch, ch, emb, c.temporalConv),
      ]),
    );
    const output: EmbedSequential[] = [];
    [...c.channelMult.entries()].reverse().forEach(([level, mult]) => {
      for (let i = 0; i <= c.numResBlocks; i++) {
        const layers: Layer[] = [new ResBlock(ch + chans.pop()!, mc * mult, emb, c.temporalConv)];
        ch = mc * mult;
        if (c.attentionResolutions.includes(ds)) layers.push(...attentionAt(ch));
        if (level > 0 && i === c.numResBlocks) {
          layers.push(new Upsample(ch));
          ds /= 2;
        }
        output.push(new EmbedSequential(layers));
      }
    });
    this.outputBlocks = this.child('output_blocks', new ModuleList(output)).items;
    this.outNorm = new GroupNorm(32, ch);
    this.outConv = Conv2d(mc, c.outChannels, { kernel: 3, padding: 1 });
    this.child(
      'out',
      new Sequential([
        ['0', this.outNorm],
        ['2', this.outConv],
      ]),
    );
  }

  /** A model of the YAML's `unet_config.params` (snake_case), without weights yet. */
  static fromConfig(raw: Record<string, unknown>): LvdmUNet {
    return new LvdmUNet(parseLvdmUNetConfig(raw));
  }

  /** Binds weights after the strict check (missing, unexpected or mis-shaped keys throw). */
  loadWeights(sd: StateDict, shapes?: ReadonlyMap<string, Shape>): void {
    this.validateStateDict(sd, shapes ? { shapes } : {});
    this.#weights = sd;
    this.#programs.clear();
  }

  get stateDict(): StateDict {
    if (!this.#weights)
      throw new KinemaError('LVDM_BAD_INPUT', 'LvdmUNet has no weights: call loadWeights first');
    return this.#weights;
  }

  /** Image attention strength of every cross-attention (`--image-scale`; 1.0 in the release). */
  setImageScale(scale: number): void {
    for (const seq of [...this.inputBlocks, this.middleBlock, ...this.outputBlocks]) {
      for (const l of seq.layers) {
        if (l instanceof SpatialTransformer)
          for (const block of l.blocks.items) block.attn2.imageScale = scale;
      }
    }
    this.#programs.clear();
  }

  /** Noise prediction [B, outC, F, H, W] for x [B, inC, F, H, W], timesteps [B] and context [B, S, D]. */
  forward(x: Tensor, timesteps: Tensor, context: Tensor, opts: LvdmForwardOptions = {}): Tensor {
    const c = this.config;
    if (x.rank !== 5 || x.shape[1] !== c.inChannels)
      throw new KinemaError(
        'LVDM_BAD_INPUT',
        `LvdmUNet: x must be [B, ${c.inChannels}, F, H, W], got ${x.toString()}`,
      );
    const [b, , frames, height, width] = x.shape as [number, number, number, number, number];
    if (context.rank !== 3 || context.shape[0] !== b || context.shape[2] !== c.contextDim) {
      throw new KinemaError(
        'LVDM_BAD_INPUT',
        `LvdmUNet: context must be [${b}, S, ${c.contextDim}], got ${context.toString()}`,
      );
    }
    const sinusoid = (t: Tensor): Tensor =>
      sinusoidalEmbedding(t.shape[0] === b ? t : op.expand(op.reshape(t, [1]), [b]), c.modelChannels, {
        flipSinToCos: true,
        downscaleFreqShift: 0,
      });
    let emb = this.timeEmbed.forward(sinusoid(timesteps));
    if (this.fpsEmbedding) {
      if (!opts.fps)
        throw new KinemaError('LVDM_BAD_INPUT', 'LvdmUNet: this model has fps conditioning; pass opts.fps');
      emb = op.add(emb, this.fpsEmbedding.forward(sinusoid(opts.fps)));
    }
    const embAct = op.silu(emb);
    let h = op.reshape(op.transpose(x, [0, 2, 1, 3, 4]), [b * frames, c.inChannels, height, width]);
    const skips: Tensor[] = [];
    this.inputBlocks.forEach((block, i) => {
      h = block.forward(h, embAct, context, frames);
      if (i === 0 && this.initAttn) h = this.initAttn.forward(h, embAct, context, frames);
      skips.push(h);
    });
    h = this.middleBlock.forward(h, embAct, context, frames);
    for (const block of this.outputBlocks)
      h = block.forward(op.concat([h, skips.pop()!], 1), embAct, context, frames);
    h = this.outConv.forward(op.silu(this.outNorm.forward(h)));
    return op.transpose(op.reshape(h, [b, frames, c.outChannels, height, width]), [0, 2, 1, 3, 4]);
  }

  /** Host call: compiles one program per input signature (cached) and runs it. */
  async run(
    x: HostTensor,
    timesteps: HostTensor,
    context: HostTensor,
    opts: { fps?: HostTensor } = {},
  ): Promise<HostTensor> {
    const feeds: Record<string, HostTensor> = { x, timesteps, context };
    if (opts.fps) feeds['fps'] = opts.fps;
    const specs: InputSpec[] = Object.entries(feeds).map(([name, t]) => ({
      name,
      shape: t.shape,
      dtype: t.dtype,
    }));
    const key = specs.map((s) => `${s.name}[${s.shape.join(',')}]`).join(';');
    let compiled = this.#programs.get(key);
    if (!compiled) {
      const fn = (xt: Tensor, t: Tensor, ctx: Tensor, fps?: Tensor): Tensor =>
        this.forward(xt, t, ctx, fps ? { fps } : {});
      compiled = compileWithWeights(fn, specs, this.stateDict);
      this.#programs.set(key, compiled);
      compiled.catch(() => this.#programs.delete(key));
    }
    return (await (await compiled).exe.run(feeds))['out0']!;
  }
}
