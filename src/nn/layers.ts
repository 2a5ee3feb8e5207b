// Basic layers with PyTorch parameter names and default initializations.
import type { Tensor } from '../engine/tensor.js';
import * as op from '../engine/ops.js';
import { Module } from './module.js';
import { LoRABranch, addLoRABranches } from './lora.js';
import type { LoRAGeometry, LoRAHost } from './lora.js';
import { KinemaError } from '../errors.js';

export class Linear extends Module implements LoRAHost {
  readonly loraBranches: LoRABranch[] = [];
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly bias = true,
    /** 'zeros' starts the layer at zero output (an added branch that begins as a no-op). */
    init: 'default' | 'zeros' = 'default',
  ) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    const spec = init === 'zeros' ? ({ kind: 'zeros' } as const) : ({ kind: 'uniform', bound } as const);
    this.declare('weight', [outFeatures, inFeatures], spec);
    if (bias) this.declare('bias', [outFeatures], spec);
  }
  get loraGeometry(): LoRAGeometry {
    return { kind: 'linear', inFeatures: this.inFeatures, outFeatures: this.outFeatures };
  }
  /** Adds a LoRA branch (src/nn/lora.ts) named `lora_<i>`; its B starts at zero. */
  addLoRA(rank: number, scale: number): LoRABranch {
    const b = this.child(`lora_${this.loraBranches.length}`, new LoRABranch(this.loraGeometry, rank, scale));
    this.loraBranches.push(b);
    return b;
  }
  forward(x: Tensor): Tensor {
    const xw = op.matmul(x, op.transpose(this.p('weight'), [1, 0]));
    const y = this.bias ? op.add(xw, this.p('bias')) : xw;
    return addLoRABranches(y, x, this.loraBranches);
  }
  /**
   * x·Wᵀ without the bias (nor LoRA branches): a second input through the same projection, whose bias the
   * first input's pass already added (decoupled cross-attention sums two attentions before `to_out`).
   */
  forwardWithoutBias(x: Tensor): Tensor {
    return op.matmul(x, op.transpose(this.p('weight'), [1, 0]));
  }
}

export interface ConvConfig {
  kernel: number | readonly number[];
  stride?: number | readonly number[];
  padding?: number | readonly number[];
  dilation?: number | readonly number[];
  groups?: number;
  bias?: boolean;
}

function expandN(v: number | readonly number[] | undefined, n: number, dflt: number): number[] {
  if (v === undefined) return new Array<number>(n).fill(dflt);
  if (typeof v === 'number') return new Array<number>(n).fill(v);
  if (v.length !== n) throw new KinemaError('NN_INVALID_MODULE', `expected ${n} values, got [${v}]`);
  return [...v];
}

/** N-d convolution (Conv1d/2d/3d by `dims`), weight [out, in/groups, *kernel]. */
export class ConvNd extends Module implements LoRAHost {
  readonly loraBranches: LoRABranch[] = [];
  readonly kernel: number[];
  private readonly stride: number[];
  private readonly padding: number[];
  private readonly dilation: number[];
  private readonly groups: number;
  private readonly hasBias: boolean;
  constructor(
    readonly dims: number,
    readonly inChannels: number,
    readonly outChannels: number,
    cfg: ConvConfig,
  ) {
    super();
    this.kernel = expandN(cfg.kernel, dims, 1);
    this.stride = expandN(cfg.stride, dims, 1);
    this.padding = expandN(cfg.padding, dims, 0);
    this.dilation = expandN(cfg.dilation, dims, 1);
    this.groups = cfg.groups ?? 1;
    this.hasBias = cfg.bias ?? true;
    const fanIn = (inChannels / this.groups) * this.kernel.reduce((a, b) => a * b, 1);
    const bound = 1 / Math.sqrt(fanIn);
    this.declare('weight', [outChannels, inChannels / this.groups, ...this.kernel], {
      kind: 'uniform',
      bound,
    });
    if (this.hasBias) this.declare('bias', [outChannels], { kind: 'uniform', bound });
  }
  get loraGeometry(): LoRAGeometry {
    return {
      kind: 'conv',
      inChannels: this.inChannels,
      outChannels: this.outChannels,
      kernel: this.kernel,
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
    };
  }
  /** Adds a LoRA branch (src/nn/lora.ts) named `lora_<i>`: a conv of this kernel to rank r, then 1×1. */
  addLoRA(rank: number, scale: number): LoRABranch {
    const b = this.child(`lora_${this.loraBranches.length}`, new LoRABranch(this.loraGeometry, rank, scale));
    this.loraBranches.push(b);
    return b;
  }
  forward(x: Tensor): Tensor {
    const y = op.conv(
      x,
      this.p('weight'),
      {
        strides: this.stride,
        pads: [...this.padding, ...this.padding],
        dilations: this.dilation,
        group: this.groups,
      },
      this.hasBias ? this.p('bias') : undefined,
    );
    return addLoRABranches(y, x, this.loraBranches);
  }
}

export const Conv2d = (cin: number, cout: number, cfg: ConvConfig): ConvNd => new ConvNd(2, cin, cout, cfg);
export const Conv3d = (cin: number, cout: number, cfg: ConvConfig): ConvNd => new ConvNd(3, cin, cout, cfg);
export const Conv1d = (cin: number, cout: number, cfg: ConvConfig): ConvNd => new ConvNd(1, cin, cout, cfg);

/** GroupNorm over [N, C, ...] with per-channel affine weight/bias. */
export class GroupNorm extends Module {
  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    readonly eps = 1e-5,
    readonly affine = true,
  ) {
    super();
    if (numChannels % numGroups !== 0)
      throw new KinemaError(
        'NN_INVALID_MODULE',
        `GroupNorm: ${numChannels} channels are not divisible by ${numGroups} groups`,
      );
    if (affine) {
      this.declare('weight', [numChannels], { kind: 'ones' });
      this.declare('bias', [numChannels], { kind: 'zeros' });
    }
  }
  forward(x: Tensor): Tensor {
    const y = op.groupNormCore(x, this.numGroups, this.eps);
    if (!this.affine) return y;
    const bshape = [1, this.numChannels, ...new Array<number>(x.rank - 2).fill(1)];
    return op.add(op.mul(y, op.reshape(this.p('weight'), bshape)), op.reshape(this.p('bias'), bshape));
  }
}

/** LayerNorm over the last axis. */
export class LayerNorm extends Module {
  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
    readonly affine = true,
  ) {
    super();
    if (affine) {
      this.declare('weight', [dim], { kind: 'ones' });
      this.declare('bias', [dim], { kind: 'zeros' });
    }
  }
  forward(x: Tensor): Tensor {
    const y = op.layerNormCore(x, this.eps);
    return this.affine ? op.add(op.mul(y, this.p('weight')), this.p('bias')) : y;
  }
}

export class Embedding extends Module {
  constructor(
    readonly num: number,
    readonly dim: number,
  ) {
    super();
    this.declare('weight', [num, dim], { kind: 'normal', std: 1 });
  }
  forward(ids: Tensor): Tensor {
    return op.gather(this.p('weight'), ids);
  }
  /** The whole table as a tensor (e.g. position embeddings used in full). */
  table(): Tensor {
    return this.p('weight');
  }
}
