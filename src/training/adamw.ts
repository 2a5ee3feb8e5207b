import { KinemaError } from '../errors.js';
// AdamW (Loshchilov & Hutter, decoupled weight decay) with the same update as torch.optim.AdamW
// (amsgrad=False, maximize=False), and global-norm gradient clipping like torch.nn.utils.clip_grad_norm_.
// Parameters, gradients and optimizer moments are float32; each element's update is computed in float64
// and rounded once when stored.

export interface AdamWOptions {
  lr: number;
  /** (beta1, beta2); default (0.9, 0.999) as in torch. */
  betas?: [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay; default 0.01 as in torch.optim.AdamW. */
  weightDecay?: number;
}

/** Hyperparameters as stored in checkpoints. */
export interface AdamWHyperparameters {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

function checkFinite(name: string, v: number, min: number, maxExclusive = Infinity): void {
  if (!Number.isFinite(v) || v < min || v >= maxExclusive) {
    throw new KinemaError(
      'TRAIN_OPTIMIZER_STATE',
      `AdamW: ${name} must be a finite number in [${min}, ${maxExclusive}), got ${v}`,
    );
  }
}

export class AdamW {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of step() calls so far (torch's per-parameter `step`; all parameters step together here). */
  stepCount = 0;
  readonly #expAvg = new Map<string, Float32Array>();
  readonly #expAvgSq = new Map<string, Float32Array>();

  constructor(opts: AdamWOptions) {
    this.lr = opts.lr;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    checkFinite('lr', this.lr, 0);
    checkFinite('beta1', this.betas[0], 0, 1);
    checkFinite('beta2', this.betas[1], 0, 1);
    checkFinite('eps', this.eps, 0);
    checkFinite('weightDecay', this.weightDecay, 0);
  }

  get hyperparameters(): AdamWHyperparameters {
    return {
      lr: this.lr,
      betas: [this.betas[0], this.betas[1]],
      eps: this.eps,
      weightDecay: this.weightDecay,
    };
  }

  /**
   * One AdamW step in place. Every parameter needs a gradient of the same length and every gradient a
   * parameter. `lr` overrides the stored learning rate for this step (e.g. from an LR schedule); `lrScale`
   * multiplies it per parameter (parameter groups with their own learning rate; weight decay scales with it,
   * as in torch's per-group lr).
   */
  step(
    params: Map<string, Float32Array>,
    grads: Map<string, Float32Array>,
    lr: number = this.lr,
    lrScale?: (name: string) => number,
  ): void {
    checkFinite('lr', lr, 0);
    for (const name of grads.keys()) {
      if (!params.has(name))
        throw new KinemaError(
          'TRAIN_OPTIMIZER_STATE',
          `AdamW.step: gradient "${name}" has no matching parameter`,
        );
    }
    for (const [name, p] of params) {
      const g = grads.get(name);
      if (g === undefined)
        throw new KinemaError('TRAIN_OPTIMIZER_STATE', `AdamW.step: no gradient for parameter "${name}"`);
      if (g.length !== p.length) {
        throw new KinemaError(
          'TRAIN_OPTIMIZER_STATE',
          `AdamW.step: gradient "${name}" has ${g.length} elements, parameter has ${p.length}`,
        );
      }
    }
    this.stepCount++;
    const [beta1, beta2] = this.betas;
    const t = this.stepCount;
    const coefficients = (rate: number): UpdateCoefficients => ({
      decay: 1 - rate * this.weightDecay,
      beta1,
      beta2,
      stepSize: rate / (1 - beta1 ** t),
      bias2Sqrt: Math.sqrt(1 - beta2 ** t),
      eps: this.eps,
    });
    const coefs = coefficients(lr);
    for (const [name, p] of params) {
      const m = this.#moment(this.#expAvg, name, p.length);
      const v = this.#moment(this.#expAvgSq, name, p.length);
      const scale = lrScale ? lrScale(name) : 1;
      if (scale !== 1) checkFinite(`lr scale of "${name}"`, scale, 0);
      updateTensor(p, grads.get(name)!, m, v, scale === 1 ? coefs : coefficients(lr * scale));
    }
  }

  /** Moments as 'exp_avg/<name>' and 'exp_avg_sq/<name>' (copies), like torch's optimizer state names. */
  stateDict(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [name, m] of this.#expAvg) out.set(`exp_avg/${name}`, m.slice());
    for (const [name, v] of this.#expAvgSq) out.set(`exp_avg_sq/${name}`, v.slice());
    return out;
  }

  /** Replaces the moments and step count with a stateDict() result (copied). */
  loadStateDict(state: Map<string, Float32Array>, stepCount: number): void {
    if (!Number.isSafeInteger(stepCount) || stepCount < 0) {
      throw new KinemaError(
        'TRAIN_OPTIMIZER_STATE',
        `AdamW.loadStateDict: stepCount must be a non-negative integer, got ${stepCount}`,
      );
    }
    const expAvg = new Map<string, Float32Array>();
    const expAvgSq = new Map<string, Float32Array>();
    for (const [key, value] of state) {
      if (key.startsWith('exp_avg/')) expAvg.set(key.slice('exp_avg/'.length), value.slice());
      else if (key.startsWith('exp_avg_sq/')) expAvgSq.set(key.slice('exp_avg_sq/'.length), value.slice());
      else
        throw new KinemaError(
          'TRAIN_OPTIMIZER_STATE',
          `AdamW.loadStateDict: unexpected key "${key}" (want exp_avg/… or exp_avg_sq/…)`,
        );
    }
    for (const [name, m] of expAvg) {
      const v = expAvgSq.get(name);
      if (v === undefined || v.length !== m.length) {
        throw new KinemaError(
          'TRAIN_OPTIMIZER_STATE',
          `AdamW.loadStateDict: "exp_avg/${name}" has no matching "exp_avg_sq/${name}"`,
        );
      }
    }
    if (expAvgSq.size !== expAvg.size)
      throw new KinemaError(
        'TRAIN_OPTIMIZER_STATE',
        'AdamW.loadStateDict: exp_avg_sq entries without exp_avg',
      );
    this.#expAvg.clear();
    this.#expAvgSq.clear();
    for (const [name, m] of expAvg) this.#expAvg.set(name, m);
    for (const [name, v] of expAvgSq) this.#expAvgSq.set(name, v);
    this.stepCount = stepCount;
  }

  #moment(store: Map<string, Float32Array>, name: string, length: number): Float32Array {
    let m = store.get(name);
    if (m === undefined) {
      m = new Float32Array(length);
      store.set(name, m);
    } else if (m.length !== length) {
      throw new KinemaError(
        'TRAIN_OPTIMIZER_STATE',
        `AdamW.step: optimizer state for "${name}" has ${m.length} elements, parameter has ${length}`,
      );
    }
    return m;
  }
}

interface UpdateCoefficients {
  decay: number;
  beta1: number;
  beta2: number;
  stepSize: number;
  bias2Sqrt: number;
  eps: number;
}

/**
 * torch's single-tensor AdamW: p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps).
 */
function updateTensor(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  c: UpdateCoefficients,
): void {
  const { decay, beta1, beta2, stepSize, bias2Sqrt, eps } = c;
  const oneMinusBeta1 = 1 - beta1;
  const oneMinusBeta2 = 1 - beta2;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]!;
    const mi = beta1 * m[i]! + oneMinusBeta1 * gi;
    const vi = beta2 * v[i]! + oneMinusBeta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i]! * decay - (stepSize * Math.fround(mi)) / (Math.sqrt(Math.fround(vi)) / bias2Sqrt + eps);
  }
}

/**
 * Scales all gradients in place so that their global L2 norm is at most maxNorm (factor maxNorm / (norm + 1e-6),
 * applied only when below 1), like torch.nn.utils.clip_grad_norm_. Returns the norm before clipping.
 * A non-finite norm is returned as is and handled as torch does with error_if_nonfinite=False: an infinite norm
 * gives factor 0 (finite gradients become 0, infinite ones NaN), a NaN norm makes every gradient NaN.
 */
export function clipGradNorm(grads: Map<string, Float32Array>, maxNorm: number): number {
  if (!(maxNorm > 0))
    throw new KinemaError('TRAIN_OPTIMIZER_STATE', `clipGradNorm: maxNorm must be positive, got ${maxNorm}`);
  let sumSq = 0;
  for (const g of grads.values()) {
    let s = 0;
    for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
    sumSq += s;
  }
  const norm = Math.sqrt(sumSq);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1 || Number.isNaN(coef)) {
    for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i] = g[i]! * coef;
  }
  return norm;
}
