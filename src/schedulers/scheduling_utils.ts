import { KinemaError } from '../errors.js';
// Shared pieces of the diffusion schedulers: the Scheduler interface, beta schedules, timestep spacing,
// noise sources and float32 arithmetic helpers.
//
// Numerical contract: diffusers (v0.35.2) keeps betas / alphas_cumprod as float32 torch tensors and does all
// per-step arithmetic on float32 0-dim tensors. We reproduce that rounding with `Math.fround` after every
// operation so that results agree with the reference to the last bit or two, not just to a tolerance.

/** Source of standard-normal samples (for DDPM's and DDIM(eta>0)'s variance noise, SDE solvers). */
export interface NoiseSource {
  normal(count: number): Float32Array;
}

export interface SchedulerStepResult {
  /** x_{t-1}: the sample at the previous (less noisy) timestep. */
  prevSample: Float32Array;
  /** x_0 as predicted from the model output at this step (DDIM, DDPM). */
  predOriginalSample?: Float32Array;
}

export interface StepOptions {
  /** DDIM only: weight of the stochastic term (0 = deterministic DDIM, 1 = DDPM-like). */
  eta?: number;
  /** Exact variance noise to use (same length as the sample); mutually exclusive with `generator`. */
  noise?: Float32Array;
  /** Noise source used when the step needs noise and `noise` is not given. */
  generator?: NoiseSource;
}

export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';
export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2' | 'sigmoid';
export type TimestepSpacing = 'linspace' | 'leading' | 'trailing';

/** Options shared by the DDPM-family configs (snake_case in scheduler_config.json). */
export interface BaseSchedulerConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
  trainedBetas: number[] | null;
  predictionType: PredictionType;
  timestepSpacing: TimestepSpacing;
  stepsOffset: number;
  rescaleBetasZeroSnr: boolean;
}

export interface Scheduler {
  readonly config: BaseSchedulerConfig & { readonly className: string };
  /** Standard deviation of the initial noise distribution (the initial latents are multiplied by it). */
  readonly initNoiseSigma: number;
  /** Timesteps of the current schedule (set by `setTimesteps`), largest first. */
  readonly timesteps: number[];
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  setTimesteps(numInferenceSteps: number): void;
  scaleModelInput(sample: Float32Array, timestep: number): Float32Array;
  step(
    modelOutput: Float32Array,
    timestep: number,
    sample: Float32Array,
    opts?: StepOptions,
  ): SchedulerStepResult;
  /** Forward diffusion q(x_t | x_0); batch = timesteps.length, equal contiguous slices per batch item. */
  addNoise(original: Float32Array, noise: Float32Array, timesteps: number[]): Float32Array;
}

export const f32 = Math.fround;

/** float32 fused multiply-add fl(a*b + c): the product of two floats is exact in float64. */
export function fmaF32(a: number, b: number, c: number): number {
  return f32(a * b + c);
}

/**
 * torch.exp on a float32 CPU tensor. torch evaluates it (even for 0-dim tensors) with SLEEF's vectorised
 * `expf_u10` (AVX2 build, FMA), which differs from the correctly rounded result in ~10% of inputs; the
 * scheduler coefficients e^{±h} depend on that last bit, so we reproduce SLEEF's algorithm: Cody–Waite range
 * reduction s = d − q·ln2 (q = rint(d/ln2)), a degree-6 polynomial for e^s, then the scaling by 2^q.
 */
export function torchExpF32(d: number): number {
  if (Number.isNaN(d)) return Number.NaN;
  if (d < -104) return 0;
  if (d > 100) return Number.POSITIVE_INFINITY;
  const x = f32(d);
  const q = roundHalfEven(f32(x * f32(1.442695040888963407359924681001892137426645954152985934135449406931)));
  let s = fmaF32(q, -f32(0.693145751953125), x);
  s = fmaF32(q, -f32(1.428606765330187045e-6), s);
  let u = f32(0.000198527617612853646278381);
  u = fmaF32(u, s, f32(0.00139304355252534151077271));
  u = fmaF32(u, s, f32(0.00833336077630519866943359));
  u = fmaF32(u, s, f32(0.0416664853692054748535156));
  u = fmaF32(u, s, f32(0.166666671633720397949219));
  u = fmaF32(u, s, 0.5);
  u = f32(1 + fmaF32(f32(s * s), u, s));
  const half = q >> 1;
  return f32(f32(u * 2 ** half) * 2 ** (q - half));
}

/** float32 square root, as torch's `x ** 0.5` (dispatched to sqrt). */
export function sqrtF32(x: number): number {
  return f32(Math.sqrt(x));
}

/**
 * torch.linspace(start, end, steps, dtype=float32) on CPU, reproduced bit for bit.
 * torch 1.13's kernel computes step = (end - start) / (steps - 1) in float, fills the first half from `start`
 * and the second from `end` (base = start + step*idx, compiled to an FMA), and in its AVX2 path writes
 * 8-lane vectors `base + k*step` from each base, two vectors per iteration, the tail element-wise.
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const base = (idx: number): number =>
    idx < halfway ? fmaF32(step, idx, s) : fmaF32(-step, steps - idx - 1, e);
  const lanes = 8;
  let i = 0;
  for (; i + 2 * lanes <= steps; i += 2 * lanes) {
    for (let v = i; v < i + 2 * lanes; v += lanes) {
      const b = base(v);
      for (let k = 0; k < lanes; k++) out[v + k] = fmaF32(k, step, b);
    }
  }
  for (; i < steps; i++) out[i] = base(i);
  return out;
}

/** Glide's cosine schedule (squaredcos_cap_v2): betas from alpha_bar(t) = cos²((t + 0.008)/1.008 · π/2). */
export function betasForAlphaBar(numDiffusionTimesteps: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number): number => {
    const c = Math.cos((((t + 0.008) / 1.008) * Math.PI) / 2);
    return c * c;
  };
  const betas = new Float32Array(numDiffusionTimesteps);
  for (let i = 0; i < numDiffusionTimesteps; i++) {
    const t1 = i / numDiffusionTimesteps;
    const t2 = (i + 1) / numDiffusionTimesteps;
    betas[i] = Math.min(1 - alphaBar(t2) / alphaBar(t1), maxBeta);
  }
  return betas;
}

/** Betas (float32) for a config, as diffusers builds them in `__init__`. */
export function makeBetas(config: BaseSchedulerConfig, allowSigmoid = false): Float32Array {
  const n = config.numTrainTimesteps;
  let betas: Float32Array;
  if (config.trainedBetas !== null) {
    betas = Float32Array.from(config.trainedBetas);
  } else if (config.betaSchedule === 'linear') {
    betas = torchLinspaceF32(config.betaStart, config.betaEnd, n);
  } else if (config.betaSchedule === 'scaled_linear') {
    // The latent-diffusion schedule: linear in sqrt(beta), then squared (float32 x*x).
    const root = torchLinspaceF32(Math.sqrt(config.betaStart), Math.sqrt(config.betaEnd), n);
    betas = root.map((x) => x * x);
  } else if (config.betaSchedule === 'squaredcos_cap_v2') {
    betas = betasForAlphaBar(n);
  } else if (config.betaSchedule === 'sigmoid' && allowSigmoid) {
    // GeoDiff: sigmoid(linspace(-6, 6)) * (beta_end - beta_start) + beta_start, in float32.
    const range = f32(config.betaEnd - config.betaStart);
    const start = f32(config.betaStart);
    betas = torchLinspaceF32(-6, 6, n).map((x) => f32(f32(f32(1 / f32(1 + Math.exp(-x))) * range) + start));
  } else {
    throw new KinemaError(
      'SCHEDULER_CONFIG',
      `beta_schedule "${config.betaSchedule}" is not implemented for this scheduler`,
    );
  }
  if (betas.length !== n) {
    throw new KinemaError(
      'SCHEDULER_CONFIG',
      `trained_betas has ${betas.length} entries but num_train_timesteps is ${n}`,
    );
  }
  return config.rescaleBetasZeroSnr ? rescaleZeroTerminalSnr(betas) : betas;
}

/**
 * Betas whose signal-to-noise ratio is the given betas' divided by s² at every timestep: ᾱ' = ᾱ / (s² − (s² − 1)·ᾱ),
 * β'_t = 1 − ᾱ'_t / ᾱ'_{t−1} (the resolution shift of Hoogeboom et al. 2023, "simple diffusion", and SD3: data
 * with many correlated values — here 16 frames of latents — keeps its content visible at a given SNR far longer
 * than one small image, so its schedule needs less signal at every step). Computed in float64, stored float32;
 * s = 1 returns the betas unchanged. Written as a scheduler config's `trained_betas`.
 */
export function snrShiftedBetas(betas: Float32Array, s: number): Float32Array {
  if (!(s > 0 && Number.isFinite(s)))
    throw new KinemaError('SCHEDULER_CONFIG', `SNR shift must be a positive number, got ${s}`);
  if (s === 1) return Float32Array.from(betas);
  const s2 = s * s;
  const out = new Float32Array(betas.length);
  let acc = 1;
  let prev = 1;
  for (let t = 0; t < betas.length; t++) {
    acc *= 1 - betas[t]!;
    const shifted = acc / (s2 - (s2 - 1) * acc);
    out[t] = 1 - shifted / prev;
    prev = shifted;
  }
  return out;
}

/** torch.cumprod on a float32 CPU tensor: accumulates in float64, stores each prefix product as float32. */
export function cumprodF32(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length);
  let acc = 1;
  for (let i = 0; i < values.length; i++) {
    acc *= values[i] as number;
    out[i] = acc;
  }
  return out;
}

/** alphas_cumprod = cumprod(1 - betas) (alpha-bar of DDPM eq. 4), float32. */
export function alphasCumprodFromBetas(betas: Float32Array): Float32Array {
  return cumprodF32(betas.map((b) => 1 - b));
}

/**
 * Rescale betas to zero terminal SNR (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are
 * Flawed", Algorithm 1), in float32 like diffusers.
 */
export function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const sqrtBar = alphasCumprodFromBetas(betas).map(Math.sqrt);
  const first = sqrtBar[0] as number;
  const last = sqrtBar[sqrtBar.length - 1] as number;
  // 1. shift so the last timestep is zero; 2. scale so the first timestep keeps its value.
  const scale = f32(first / f32(first - last));
  const bar = sqrtBar.map((x) => {
    const y = f32(f32(x - last) * scale);
    return y * y;
  });
  // 3. revert the cumprod: alpha_t = bar_t / bar_{t-1}; beta = 1 - alpha.
  const out = new Float32Array(bar.length);
  out[0] = 1 - (bar[0] as number);
  for (let i = 1; i < bar.length; i++) out[i] = 1 - f32((bar[i] as number) / (bar[i - 1] as number));
  return out;
}

/** numpy's `np.round` (round half to even). */
export function roundHalfEven(x: number): number {
  const lo = Math.floor(x);
  const diff = x - lo;
  if (diff < 0.5) return lo;
  if (diff > 0.5) return lo + 1;
  return lo % 2 === 0 ? lo : lo + 1;
}

/** numpy.linspace(start, stop, num) in float64: start + i*step, the last element exactly `stop`. */
export function numpyLinspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/** numpy.arange(start, stop, step) for float steps: length ceil((stop-start)/step), x_i = start + i*delta. */
export function numpyArange(start: number, stop: number, step: number): number[] {
  const length = Math.max(0, Math.ceil((stop - start) / step));
  const delta = start + step - start;
  return Array.from({ length }, (_, i) => (i === 0 ? start : i === 1 ? start + step : start + i * delta));
}

/**
 * Timesteps for `numInferenceSteps` over `numTrainTimesteps` with the spacings of Lin et al. 2023, Table 2,
 * exactly as DDIM/DDPM's `set_timesteps` computes them (largest first).
 */
export function spacedTimesteps(
  spacing: TimestepSpacing,
  numTrainTimesteps: number,
  numInferenceSteps: number,
  stepsOffset: number,
): number[] {
  if (spacing === 'linspace') {
    return numpyLinspace(0, numTrainTimesteps - 1, numInferenceSteps)
      .map(roundHalfEven)
      .reverse();
  }
  if (spacing === 'leading') {
    const ratio = Math.floor(numTrainTimesteps / numInferenceSteps);
    return Array.from({ length: numInferenceSteps }, (_, i) => i * ratio + stepsOffset).reverse();
  }
  const ratio = numTrainTimesteps / numInferenceSteps;
  return numpyArange(numTrainTimesteps, 0, -ratio).map((t) => Math.trunc(roundHalfEven(t)) - 1);
}

/** Validates the step count for `setTimesteps`. */
export function checkInferenceSteps(numInferenceSteps: number, numTrainTimesteps: number): void {
  if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1) {
    throw new KinemaError(
      'SCHEDULER_BAD_CALL',
      `num_inference_steps must be a positive integer, got ${numInferenceSteps}`,
    );
  }
  if (numInferenceSteps > numTrainTimesteps) {
    throw new KinemaError(
      'SCHEDULER_BAD_CALL',
      `num_inference_steps (${numInferenceSteps}) cannot be larger than num_train_timesteps (${numTrainTimesteps})`,
    );
  }
}

/** Validates a timestep used to index alphas_cumprod. */
export function checkTrainTimestep(timestep: number, numTrainTimesteps: number, who: string): void {
  if (!Number.isInteger(timestep) || timestep < 0 || timestep >= numTrainTimesteps) {
    throw new KinemaError(
      'SCHEDULER_BAD_CALL',
      `${who}: timestep ${timestep} is not an integer in [0, ${numTrainTimesteps})`,
    );
  }
}

/** Checks that two tensors given as flat arrays have the same number of elements. */
export function checkSameLength(a: Float32Array, b: Float32Array, what: string): void {
  if (a.length !== b.length) {
    throw new KinemaError(
      'SCHEDULER_BAD_CALL',
      `${what}: length mismatch (${a.length} vs ${b.length} elements)`,
    );
  }
}

/** Noise for a stochastic step: the explicit tensor or a draw from the generator (never both). */
export function resolveNoise(count: number, opts: StepOptions | undefined, who: string): Float32Array {
  if (opts?.noise !== undefined && opts.generator !== undefined) {
    throw new KinemaError('SCHEDULER_BAD_CALL', `${who}: pass either opts.noise or opts.generator, not both`);
  }
  const noise = opts?.noise ?? opts?.generator?.normal(count);
  if (noise === undefined) {
    throw new KinemaError(
      'SCHEDULER_BAD_CALL',
      `${who}: this step adds noise; pass opts.noise (${count} values) or opts.generator`,
    );
  }
  if (noise.length !== count) {
    throw new KinemaError(
      'SCHEDULER_BAD_CALL',
      `${who}: noise has ${noise.length} values, the sample has ${count}`,
    );
  }
  return noise;
}

/** Splits a flat batch into `batch` equal contiguous slices; returns the slice length. */
export function batchSliceLength(total: number, batch: number, who: string): number {
  if (batch < 1 || total % batch !== 0) {
    throw new KinemaError(
      'SCHEDULER_BAD_CALL',
      `${who}: ${total} values cannot be split into ${batch} equal batch items`,
    );
  }
  return total / batch;
}

/**
 * Deterministic standard-normal source (xoshiro128** + Box–Muller), for reproducible runs in TypeScript.
 * It does not reproduce torch's generator; replay reference noise through `StepOptions.noise` instead.
 */
export class SeededNormalNoise implements NoiseSource {
  private s = new Uint32Array(4);

  constructor(seed: number) {
    // splitmix32 expands the seed into the 128-bit state.
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  /** Uniform in (0, 1). */
  uniform(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1] as number, 5), 7), 9) >>> 0;
    const t = ((s[1] as number) << 9) >>> 0;
    s[2] = (s[2] as number) ^ (s[0] as number);
    s[3] = (s[3] as number) ^ (s[1] as number);
    s[1] = (s[1] as number) ^ (s[2] as number);
    s[0] = (s[0] as number) ^ (s[3] as number);
    s[2] = (s[2] as number) ^ t;
    s[3] = rotl(s[3] as number, 11);
    return (result + 0.5) / 4294967296;
  }

  normal(count: number): Float32Array {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i += 2) {
      const r = Math.sqrt(-2 * Math.log(this.uniform()));
      const theta = 2 * Math.PI * this.uniform();
      out[i] = r * Math.cos(theta);
      if (i + 1 < count) out[i + 1] = r * Math.sin(theta);
    }
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** All training timesteps, largest first (the schedule before `setTimesteps`). */
export function trainTimesteps(numTrainTimesteps: number): number[] {
  return Array.from({ length: numTrainTimesteps }, (_, i) => numTrainTimesteps - 1 - i);
}

/** The checked inference schedule of DDIM/DDPM: `timestep_spacing` over the training steps, plus `steps_offset`. */
export function inferenceTimesteps(
  c: { timestepSpacing: TimestepSpacing; numTrainTimesteps: number; stepsOffset: number },
  numInferenceSteps: number,
): number[] {
  checkInferenceSteps(numInferenceSteps, c.numTrainTimesteps);
  return spacedTimesteps(c.timestepSpacing, c.numTrainTimesteps, numInferenceSteps, c.stepsOffset);
}
