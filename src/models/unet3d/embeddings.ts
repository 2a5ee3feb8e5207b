// Timestep conditioning: the sinusoidal projection of a (possibly fractional) timestep and the MLP that
// turns it into the UNet's time embedding (diffusers' Timesteps + TimestepEmbedding). The same pair embeds the
// frame rate for VideoCrafter-style fps conditioning.
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module } from '../../nn/module.js';
import { Linear } from '../../nn/layers.js';
import type { ActivationName } from './config.js';
import { activation } from './activations.js';
import { KinemaError } from '../../errors.js';

export interface SinusoidalOptions {
  /** Order [cos, sin] instead of [sin, cos]. */
  flipSinToCos: boolean;
  /** Frequencies are exp(-ln(maxPeriod) · i / (dim/2 − shift)). */
  downscaleFreqShift: number;
  scale?: number;
  maxPeriod?: number;
}

/**
 * The frequency table exp(-ln(maxPeriod) · i / (half − shift)), i = 0…half−1, rounded step by step to float32
 * exactly as PyTorch evaluates it in float32 (so the timestep products agree to the last bit).
 */
export function sinusoidalFrequencies(dim: number, shift: number, maxPeriod = 10000): Float32Array {
  const half = Math.floor(dim / 2);
  const f = Math.fround;
  const negLog = f(-Math.log(maxPeriod));
  const denom = f(half - shift);
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) out[i] = f(Math.exp(f(f(negLog * i) / denom)));
  return out;
}

/** Sinusoidal embedding of timesteps `t` [N] (any numeric dtype) → float32 [N, dim]. */
export function sinusoidalEmbedding(t: Tensor, dim: number, opts: SinusoidalOptions): Tensor {
  if (t.rank !== 1)
    throw new KinemaError(
      'UNET_BAD_INPUT',
      `timestep embedding needs a 1-d tensor of timesteps, got ${t.toString()}`,
    );
  const half = Math.floor(dim / 2);
  const freqs = op.constant(sinusoidalFrequencies(dim, opts.downscaleFreqShift, opts.maxPeriod), [1, half]);
  let args = op.mul(op.reshape(op.cast(t, 'float32'), [-1, 1]), freqs);
  if (opts.scale !== undefined && opts.scale !== 1) args = op.mul(args, opts.scale);
  const [sin, cos] = [op.sin(args), op.cos(args)];
  const emb = op.concat(opts.flipSinToCos ? [cos, sin] : [sin, cos], 1);
  return dim % 2 === 1 ? op.pad(emb, [0, 0, 0, 1]) : emb;
}

/** linear_1 → activation → linear_2, with an optional `cond_proj` of a condition added to the input. */
export class TimestepEmbedding extends Module {
  readonly linear1: Linear;
  readonly linear2: Linear;
  readonly condProj: Linear | null;
  constructor(
    readonly inChannels: number,
    readonly timeEmbedDim: number,
    readonly act: ActivationName,
    condProjDim: number | null = null,
  ) {
    super();
    this.linear1 = this.child('linear_1', new Linear(inChannels, timeEmbedDim));
    this.condProj =
      condProjDim === null ? null : this.child('cond_proj', new Linear(condProjDim, inChannels, false));
    this.linear2 = this.child('linear_2', new Linear(timeEmbedDim, timeEmbedDim));
  }
  forward(sample: Tensor, condition?: Tensor): Tensor {
    let x = sample;
    if (condition) {
      if (!this.condProj)
        throw new KinemaError(
          'UNET_BAD_INPUT',
          'TimestepEmbedding: a condition was given but the model has no cond_proj',
        );
      x = op.add(x, this.condProj.forward(condition));
    }
    return this.linear2.forward(activation(this.linear1.forward(x), this.act));
  }
}
