import { KinemaError } from '../errors.js';
// Exponential moving average of parameters ("EMA weights"), updated like diffusers' EMAModel.step:
// shadow ← shadow − (1 − decay_t) · (shadow − param). With `warmup`, decay_t follows diffusers' default
// schedule: t = updates − 1, decay_t = 0 for t ≤ 0 (the first update copies the parameters), otherwise
// min(decay, (1 + t) / (10 + t)). Without it, decay_t = decay from the first update.

export interface EMAOptions {
  /** Target decay, e.g. 0.9999. */
  decay: number;
  /** Ramp the decay up as diffusers' EMAModel does; default false (constant decay). */
  warmup?: boolean;
}

export class EMA {
  readonly decay: number;
  readonly warmup: boolean;
  /** Averaged parameters (float32, same names and lengths as the tracked parameters). */
  readonly shadow = new Map<string, Float32Array>();
  /** Number of update() calls so far (diffusers' `optimization_step`). */
  optimizationStep = 0;

  /** Starts the average at a copy of `params`. */
  constructor(params: Map<string, Float32Array>, opts: EMAOptions) {
    if (!Number.isFinite(opts.decay) || opts.decay < 0 || opts.decay > 1) {
      throw new KinemaError('TRAIN_OPTIMIZER_STATE', `EMA: decay must be in [0, 1], got ${opts.decay}`);
    }
    this.decay = opts.decay;
    this.warmup = opts.warmup ?? false;
    for (const [name, p] of params) this.shadow.set(name, p.slice());
  }

  /** The decay that update number `optimizationStep` (1-based) uses. */
  decayAt(optimizationStep: number): number {
    if (!this.warmup) return this.decay;
    const t = Math.max(0, optimizationStep - 1);
    if (t <= 0) return 0;
    return Math.min(this.decay, (1 + t) / (10 + t));
  }

  /** Moves the average towards `params` (which must have exactly the tracked names and lengths). */
  update(params: Map<string, Float32Array>): void {
    this.#checkSameParameters(params, 'update');
    this.optimizationStep++;
    const oneMinusDecay = 1 - this.decayAt(this.optimizationStep);
    for (const [name, s] of this.shadow) {
      const p = params.get(name)!;
      for (let i = 0; i < s.length; i++) s[i] = s[i]! - oneMinusDecay * (s[i]! - p[i]!);
    }
  }

  /** Copies the averaged values into `params` (e.g. before evaluation or export). */
  copyTo(params: Map<string, Float32Array>): void {
    this.#checkSameParameters(params, 'copyTo');
    for (const [name, s] of this.shadow) params.get(name)!.set(s);
  }

  /** Copies of the shadow parameters, keyed by parameter name. */
  stateDict(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [name, s] of this.shadow) out.set(name, s.slice());
    return out;
  }

  /** Replaces the shadow parameters (same names and lengths required) and the update count. */
  loadStateDict(state: Map<string, Float32Array>, optimizationStep: number): void {
    if (!Number.isSafeInteger(optimizationStep) || optimizationStep < 0) {
      throw new KinemaError(
        'TRAIN_OPTIMIZER_STATE',
        `EMA.loadStateDict: optimizationStep must be a non-negative integer, got ${optimizationStep}`,
      );
    }
    this.#checkSameParameters(state, 'loadStateDict');
    for (const [name, s] of this.shadow) s.set(state.get(name)!);
    this.optimizationStep = optimizationStep;
  }

  #checkSameParameters(params: Map<string, Float32Array>, what: string): void {
    for (const [name, s] of this.shadow) {
      const p = params.get(name);
      if (p === undefined)
        throw new KinemaError('TRAIN_OPTIMIZER_STATE', `EMA.${what}: parameter "${name}" is missing`);
      if (p.length !== s.length) {
        throw new KinemaError(
          'TRAIN_OPTIMIZER_STATE',
          `EMA.${what}: parameter "${name}" has ${p.length} elements, the average has ${s.length}`,
        );
      }
    }
    for (const name of params.keys()) {
      if (!this.shadow.has(name))
        throw new KinemaError('TRAIN_OPTIMIZER_STATE', `EMA.${what}: parameter "${name}" is not tracked`);
    }
  }
}
