// LoRA (Hu et al. 2021; DSDN's increment units): a frozen layer y = W·x gains low-rank branches
// y = W·x + Σ s_i · B_i·(A_i·x), s_i = λ_i · α_i / r_i, with A_i [r, in] and B_i [out, r] (PEFT's lora_A /
// lora_B). B starts at zero, so a fresh branch leaves the layer's output unchanged. For convolutions A is a
// conv with the host's kernel, stride, padding and dilation and B a 1×1 conv (PEFT's and kohya's LoCon rule).
// A branch is a child module of its host (`<host>.lora_<i>.lora_A.weight`), so its weights bind, train and
// checkpoint through the same state-dict machinery as every other parameter; the scale is baked into the
// traced program as a constant (a changed scale needs a recompile, which loading a LoRA does anyway).
import type { Shape } from '../engine/ir.js';
import type { Tensor } from '../engine/tensor.js';
import * as op from '../engine/ops.js';
import { Module } from './module.js';
import type { Init, StateDict } from './module.js';
import { KinemaError } from '../errors.js';

/** What a LoRA branch needs to know of the layer it extends. */
export type LoRAGeometry =
  | { readonly kind: 'linear'; readonly inFeatures: number; readonly outFeatures: number }
  | {
      readonly kind: 'conv';
      readonly inChannels: number;
      readonly outChannels: number;
      readonly kernel: readonly number[];
      readonly stride: readonly number[];
      readonly padding: readonly number[];
      readonly dilation: readonly number[];
      readonly groups: number;
    };

/** A layer that can carry LoRA branches (Linear and ConvNd). */
export interface LoRAHost {
  readonly loraGeometry: LoRAGeometry;
  readonly loraBranches: readonly LoRABranch[];
  addLoRA(rank: number, scale: number): LoRABranch;
}

export function isLoRAHost(m: Module): m is Module & LoRAHost {
  return typeof (m as Partial<LoRAHost>).addLoRA === 'function' && 'loraGeometry' in m;
}

/** One weight tensor as a module, so that a factor's key is `<branch>.lora_A.weight` as PEFT names it. */
class LoRAFactor extends Module {
  constructor(shape: Shape, init: Init) {
    super();
    this.declare('weight', shape, init);
  }
  get weight(): Tensor {
    return this.p('weight');
  }
}

/** Shapes of A and B for a host geometry and rank. */
export function loraFactorShapes(g: LoRAGeometry, rank: number): { a: number[]; b: number[] } {
  if (g.kind === 'linear') return { a: [rank, g.inFeatures], b: [g.outFeatures, rank] };
  return {
    a: [rank, g.inChannels, ...g.kernel],
    b: [g.outChannels, rank, ...g.kernel.map(() => 1)],
  };
}

export class LoRABranch extends Module {
  readonly down: LoRAFactor;
  readonly up: LoRAFactor;
  constructor(
    readonly geometry: LoRAGeometry,
    readonly rank: number,
    /** λ · α / r: the factor the branch's output is multiplied by. */
    public scale: number,
  ) {
    super();
    if (!Number.isInteger(rank) || rank < 1)
      throw new KinemaError('LORA_BAD_OPTION', `LoRA rank must be a positive integer, got ${rank}`);
    if (geometry.kind === 'conv' && geometry.groups !== 1)
      throw new KinemaError('LORA_BAD_OPTION', `LoRA on a grouped convolution (groups ${geometry.groups})`);
    const { a, b } = loraFactorShapes(geometry, rank);
    // PEFT initialises A as nn.Linear does (kaiming uniform, a = √5: bound 1/√fan_in) and B at zero.
    const fanIn = a.slice(1).reduce((x, y) => x * y, 1);
    this.down = this.child('lora_A', new LoRAFactor(a, { kind: 'uniform', bound: 1 / Math.sqrt(fanIn) }));
    this.up = this.child('lora_B', new LoRAFactor(b, { kind: 'zeros' }));
  }

  /** s · B(A(x)) for the host's input x. */
  forward(x: Tensor): Tensor {
    return loraDelta(x, this.down.weight, this.up.weight, this.geometry, this.scale);
  }
}

/** s · B(A(x)): a branch's output for factors a, b (a pure function of its inputs, so it is gradient-checked). */
export function loraDelta(x: Tensor, a: Tensor, b: Tensor, g: LoRAGeometry, scale: number): Tensor {
  let h: Tensor;
  if (g.kind === 'linear') {
    h = op.matmul(x, op.transpose(a, [1, 0]));
    h = op.matmul(h, op.transpose(b, [1, 0]));
  } else {
    const pads = [...g.padding, ...g.padding];
    h = op.conv(x, a, { strides: [...g.stride], pads, dilations: [...g.dilation], group: 1 });
    h = op.conv(h, b, {});
  }
  return op.mul(h, scale);
}

/** y + Σ branch(x): what a host's forward returns. */
export function addLoRABranches(y: Tensor, x: Tensor, branches: readonly LoRABranch[]): Tensor {
  let out = y;
  for (const b of branches) out = op.add(out, b.forward(x));
  return out;
}

/** PEFT-style default targets in the UNet's transformers (spatial and temporal): attention q/k/v/out, feed-forward. */
export const DEFAULT_UNET_LORA_TARGETS: readonly string[] = [
  'to_q',
  'to_k',
  'to_v',
  'to_out.0',
  'ff.net.0.proj',
  'ff.net.2',
];
/** The same for the CLIP text encoder's layers. */
export const DEFAULT_TEXT_LORA_TARGETS: readonly string[] = [
  'q_proj',
  'k_proj',
  'v_proj',
  'out_proj',
  'fc1',
  'fc2',
];
export const DEFAULT_LORA_TARGETS: readonly string[] = [
  ...DEFAULT_UNET_LORA_TARGETS,
  ...DEFAULT_TEXT_LORA_TARGETS,
];

/**
 * Host layers below `root` whose path equals a target or ends with `.target` (PEFT's target_modules rule),
 * by path. A target that matches no layer is an error naming it.
 */
export function findLoRATargets(
  root: Module,
  targets: readonly string[] = DEFAULT_LORA_TARGETS,
  opts: { requireEveryTarget?: boolean } = {},
): Map<string, Module & LoRAHost> {
  const out = new Map<string, Module & LoRAHost>();
  const used = new Set<string>();
  for (const [path, m] of root.namedModules()) {
    if (!isLoRAHost(m)) continue;
    const hit = targets.find((t) => path === t || path.endsWith(`.${t}`));
    if (hit === undefined) continue;
    used.add(hit);
    out.set(path, m);
  }
  const unused = targets.filter((t) => !used.has(t));
  if ((opts.requireEveryTarget ?? false) && unused.length > 0)
    throw new KinemaError(
      'LORA_BAD_OPTION',
      `LoRA target(s) ${unused.join(', ')} match no layer of the model`,
    );
  if (out.size === 0)
    throw new KinemaError(
      'LORA_BAD_OPTION',
      `LoRA targets ${targets.join(', ')} match no layer of the model`,
    );
  return out;
}

/**
 * Adds one fresh branch (rank r, scale α/r) to every target layer below `root`; returns the branches by host
 * path and their freshly initialised weights by full key (B = 0: the model's output is unchanged).
 */
export function attachLoRA(
  root: Module,
  opts: { rank: number; alpha?: number; targets?: readonly string[]; seed?: number },
): { branches: Map<string, LoRABranch>; init: StateDict } {
  const hosts = findLoRATargets(root, opts.targets ?? DEFAULT_LORA_TARGETS, {
    requireEveryTarget: opts.targets !== undefined,
  });
  const scale = (opts.alpha ?? opts.rank) / opts.rank;
  const branches = new Map<string, LoRABranch>();
  const init: StateDict = new Map();
  let seed = opts.seed ?? 0;
  for (const [path, host] of hosts) {
    const b = host.addLoRA(opts.rank, scale);
    branches.set(path, b);
    for (const [k, v] of b.initParameters(seed++)) init.set(`${b.path}.${k}`, v);
  }
  return { branches, init };
}

/**
 * W + s·B·A for one host weight (Linear [out, in]; conv [out, in, …kernel] with B a 1×1 conv): the merged
 * weight whose plain layer computes what the layer with its branch does.
 */
export function mergeLoRAWeight(
  weight: Float32Array,
  g: LoRAGeometry,
  a: Float32Array,
  b: Float32Array,
  rank: number,
  scale: number,
): Float32Array {
  const out = g.kind === 'linear' ? g.outFeatures : g.outChannels;
  const inner = a.length / rank; // in (linear) or in·Π kernel (conv)
  if (b.length !== out * rank || weight.length !== out * inner)
    throw new KinemaError(
      'LORA_BAD_FILE',
      `LoRA factors [${out}×${rank}]·[${rank}×${inner}] do not fit a weight of ${weight.length} values`,
    );
  const merged = Float32Array.from(weight);
  for (let o = 0; o < out; o++)
    for (let r = 0; r < rank; r++) {
      const br = b[o * rank + r]! * scale;
      if (br === 0) continue;
      const row = o * inner;
      const ar = r * inner;
      for (let j = 0; j < inner; j++) merged[row + j]! += br * a[ar + j]!;
    }
  return merged;
}
