import { KinemaError } from '../errors.js';
// Learning-rate schedules with linear warmup, the same formulas as transformers'/diffusers'
// get_{constant,linear,cosine}_schedule_with_warmup (the LambdaLR multiplier times the base learning rate).
// Computed as lr · multiplier, the order torch's LambdaLR uses. `step` is the number of optimizer steps taken so far (0 for the first step), as LambdaLR counts.

export type LrSchedule = (step: number) => number;

export interface WarmupOptions {
  /** Base learning rate (the optimizer's lr). */
  lr: number;
  warmupSteps: number;
}

export interface DecayOptions extends WarmupOptions {
  totalSteps: number;
}

export interface CosineOptions extends DecayOptions {
  /** Cosine periods over the decay phase; 0.5 (default) goes from lr down to 0 once. */
  numCycles?: number;
}

function checkStepCount(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new KinemaError('TRAIN_BAD_SETTINGS', `${what} must be a non-negative integer, got ${n}`);
}

function checkOptions(o: WarmupOptions): void {
  if (!Number.isFinite(o.lr) || o.lr < 0)
    throw new KinemaError('TRAIN_BAD_SETTINGS', `lr must be a non-negative number, got ${o.lr}`);
  checkStepCount('warmupSteps', o.warmupSteps);
}

function checkStep(step: number): void {
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `LR schedule: step must be a non-negative integer, got ${step}`,
    );
  }
}

/** lr · step / warmupSteps during warmup, then lr. */
export function constantWithWarmup(opts: WarmupOptions): LrSchedule {
  checkOptions(opts);
  const { lr, warmupSteps } = opts;
  return (step) => {
    checkStep(step);
    if (step < warmupSteps) return lr * (step / Math.max(1, warmupSteps));
    return lr;
  };
}

/** Linear warmup to lr, then linear decay to 0 at totalSteps (0 afterwards). */
export function linearWithWarmup(opts: DecayOptions): LrSchedule {
  checkOptions(opts);
  checkStepCount('totalSteps', opts.totalSteps);
  const { lr, warmupSteps, totalSteps } = opts;
  return (step) => {
    checkStep(step);
    if (step < warmupSteps) return lr * (step / Math.max(1, warmupSteps));
    return lr * Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
  };
}

/** Linear warmup, then lr · max(0, ½(1 + cos(π · numCycles · 2 · progress))) with progress ∈ [0, 1]. */
export function cosineWithWarmup(opts: CosineOptions): LrSchedule {
  checkOptions(opts);
  checkStepCount('totalSteps', opts.totalSteps);
  const { lr, warmupSteps, totalSteps } = opts;
  const numCycles = opts.numCycles ?? 0.5;
  if (!Number.isFinite(numCycles) || numCycles < 0) {
    throw new KinemaError('TRAIN_BAD_SETTINGS', `numCycles must be a non-negative number, got ${numCycles}`);
  }
  return (step) => {
    checkStep(step);
    if (step < warmupSteps) return lr * (step / Math.max(1, warmupSteps));
    const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
    return lr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
  };
}
