// Multi-head attention with diffusers' parameter names (to_q, to_k, to_v, to_out.0).
import type { Tensor } from '../engine/tensor.js';
import * as op from '../engine/ops.js';
import { Module, ModuleList } from './module.js';
import { Linear } from './layers.js';

export interface AttentionConfig {
  queryDim: number;
  crossAttentionDim?: number;
  heads: number;
  dimHead: number;
  bias?: boolean;
  outBias?: boolean;
  /** Initialise the output projection to zero, so that a residual branch starts as a no-op. */
  zeroOut?: boolean;
}

export class Attention extends Module {
  readonly heads: number;
  readonly dimHead: number;
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: ModuleList<Linear>;
  constructor(cfg: AttentionConfig) {
    super();
    const inner = cfg.heads * cfg.dimHead;
    const kvDim = cfg.crossAttentionDim ?? cfg.queryDim;
    this.heads = cfg.heads;
    this.dimHead = cfg.dimHead;
    this.toQ = this.child('to_q', new Linear(cfg.queryDim, inner, cfg.bias ?? false));
    this.toK = this.child('to_k', new Linear(kvDim, inner, cfg.bias ?? false));
    this.toV = this.child('to_v', new Linear(kvDim, inner, cfg.bias ?? false));
    this.toOut = this.child(
      'to_out',
      new ModuleList([
        new Linear(inner, cfg.queryDim, cfg.outBias ?? true, cfg.zeroOut ? 'zeros' : 'default'),
      ]),
    );
  }

  /** x [B, L, queryDim], context [B, S, kvDim] (self-attention when absent), optional additive bias [B|1, H|1, L, S]. */
  forward(x: Tensor, context?: Tensor, bias?: Tensor): Tensor {
    const ctx = context ?? x;
    const o = op.multiHeadAttention(
      this.toQ.forward(x),
      this.toK.forward(ctx),
      this.toV.forward(ctx),
      this.heads,
      bias ? { bias } : {},
    );
    return this.toOut.at(0).forward(o);
  }
}
