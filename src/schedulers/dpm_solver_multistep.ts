// Multistep DPM-Solver and DPM-Solver++ for the VP diffusion SDE:
//   Lu et al. 2022, "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model Sampling" (arXiv:2206.00927)
//   Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models" (arXiv:2211.01095)
// Semantics of diffusers v0.35.2 `DPMSolverMultistepScheduler`. Notation: σ = sqrt((1 − ᾱ)/ᾱ) (the "sigma" of
// the schedule), α_t = 1/sqrt(σ² + 1), σ_t = σ α_t, λ_t = log α_t − log σ_t (half log-SNR), h = λ_t − λ_s.

import { ConfigReader, readBaseConfig } from './config.js';
import {
  dpmSecondOrderUpdate,
  dpmThirdOrderUpdate,
  halfLogSnr,
  linearCombination,
  sigmaToAlphaSigmaT,
} from './dpm_solver_updates.js';
import { karrasSigmas, exponentialSigmas, luLambdaSigmas, sigmaToT } from './sigma_schedules.js';
import {
  alphasCumprodFromBetas,
  batchSliceLength,
  checkInferenceSteps,
  checkSameLength,
  f32,
  makeBetas,
  numpyArange,
  numpyLinspace,
  resolveNoise,
  roundHalfEven,
  sqrtF32,
  torchExpF32,
  type BaseSchedulerConfig,
  type Scheduler,
  type SchedulerStepResult,
  type StepOptions,
} from './scheduling_utils.js';
import { KinemaError } from '../errors.js';

export { halfLogSnr, sigmaToAlphaSigmaT };

export type DPMAlgorithmType = 'dpmsolver++' | 'dpmsolver' | 'sde-dpmsolver++' | 'sde-dpmsolver';
export type DPMSolverType = 'midpoint' | 'heun';
export type FinalSigmasType = 'zero' | 'sigma_min';

export interface DPMSolverMultistepSchedulerConfig extends BaseSchedulerConfig {
  readonly className: 'DPMSolverMultistepScheduler';
  /** 1, 2 or 3 (3 is recommended for unconditional sampling, 2 for guided). */
  solverOrder: number;
  algorithmType: DPMAlgorithmType;
  /** Second-order formula: midpoint (DPM-Solver++ paper's) or heun (its "2M" variant with (e^{−h}−1)/h + 1). */
  solverType: DPMSolverType;
  /** Fall back to lower orders on the final steps (< 15 steps), for stability. */
  lowerOrderFinal: boolean;
  /** Use a first-order (Euler) final step regardless of the step count. */
  eulerAtFinal: boolean;
  useKarrasSigmas: boolean;
  useExponentialSigmas: boolean;
  useLuLambdas: boolean;
  /** σ after the last step: 0 (fully denoised) or the schedule's smallest σ. */
  finalSigmasType: FinalSigmasType;
  /** Timesteps whose λ_t falls below this are cut from the schedule (cosine schedules). */
  lambdaMinClipped: number;
}

const ALGORITHMS: readonly (DPMAlgorithmType | 'deis')[] = [
  'dpmsolver++',
  'dpmsolver',
  'sde-dpmsolver++',
  'sde-dpmsolver',
  'deis',
];
const SOLVER_TYPES: readonly (DPMSolverType | 'logrho' | 'bh1' | 'bh2')[] = [
  'midpoint',
  'heun',
  'logrho',
  'bh1',
  'bh2',
];

export function parseDPMSolverMultistepConfig(
  raw: Record<string, unknown>,
): DPMSolverMultistepSchedulerConfig {
  const r = new ConfigReader(raw, 'DPMSolverMultistepScheduler');
  r.rejectUnless(
    'use_beta_sigmas',
    (v) => v === false || v === null,
    'beta sigmas need scipy.stats.beta.ppf',
  );
  r.rejectUnless(
    'use_flow_sigmas',
    (v) => v === false || v === null,
    'flow-matching sigmas are not implemented',
  );
  r.rejectUnless(
    'use_dynamic_shifting',
    (v) => v === false || v === null,
    'dynamic shifting is not implemented',
  );
  r.rejectUnless('variance_type', (v) => v === null, 'learned variances need the channel layout');
  const base = readBaseConfig(r, {
    timestepSpacing: 'linspace',
    betaSchedules: ['linear', 'scaled_linear', 'squaredcos_cap_v2'],
  });
  // diffusers maps the DEIS / UniPC names onto the closest DPM-Solver settings.
  const algorithm = r.choice('algorithm_type', ALGORITHMS, 'dpmsolver++');
  const solver = r.choice('solver_type', SOLVER_TYPES, 'midpoint');
  const config: DPMSolverMultistepSchedulerConfig = {
    className: 'DPMSolverMultistepScheduler',
    ...base,
    solverOrder: r.integer('solver_order', 2),
    algorithmType: algorithm === 'deis' ? 'dpmsolver++' : algorithm,
    solverType: solver === 'midpoint' || solver === 'heun' ? solver : 'midpoint',
    lowerOrderFinal: r.boolean('lower_order_final', true),
    eulerAtFinal: r.boolean('euler_at_final', false),
    useKarrasSigmas: r.boolean('use_karras_sigmas', false),
    useExponentialSigmas: r.boolean('use_exponential_sigmas', false),
    useLuLambdas: r.boolean('use_lu_lambdas', false),
    finalSigmasType: r.choice('final_sigmas_type', ['zero', 'sigma_min'] as const, 'zero'),
    lambdaMinClipped: r.number('lambda_min_clipped', Number.NEGATIVE_INFINITY),
  };
  validateDPMConfig(config);
  return config;
}

function validateDPMConfig(c: DPMSolverMultistepSchedulerConfig): void {
  const who = 'DPMSolverMultistepScheduler';
  if (c.solverOrder < 1 || c.solverOrder > 3)
    throw new KinemaError('SCHEDULER_CONFIG', `${who}: solver_order must be 1, 2 or 3`);
  if (c.solverOrder === 3 && c.algorithmType === 'sde-dpmsolver') {
    throw new KinemaError(
      'SCHEDULER_CONFIG',
      `${who}: solver_order 3 is not defined for algorithm_type "sde-dpmsolver"`,
    );
  }
  if (Number(c.useKarrasSigmas) + Number(c.useExponentialSigmas) > 1) {
    throw new KinemaError(
      'SCHEDULER_CONFIG',
      `${who}: only one of use_karras_sigmas, use_exponential_sigmas can be true`,
    );
  }
  if (
    (c.algorithmType === 'dpmsolver' || c.algorithmType === 'sde-dpmsolver') &&
    c.finalSigmasType === 'zero'
  ) {
    throw new KinemaError(
      'SCHEDULER_CONFIG',
      `${who}: final_sigmas_type "zero" is not supported for algorithm_type "${c.algorithmType}"`,
    );
  }
}

export class DPMSolverMultistepScheduler implements Scheduler {
  readonly config: DPMSolverMultistepSchedulerConfig;
  readonly initNoiseSigma = 1.0;
  readonly order = 1;
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  /** σ for every training timestep. */
  readonly trainSigmas: Float32Array;
  /** σ for each step of the schedule plus the final σ (length numInferenceSteps + 1 after setTimesteps). */
  sigmas: Float32Array;
  timesteps: number[];
  numInferenceSteps: number | null = null;
  /** Converted model outputs of the last `solverOrder` steps (oldest first). */
  private modelOutputs: (Float32Array | null)[];
  private lowerOrderNums = 0;
  private stepIdx: number | null = null;
  private beginIdx: number | null = null;

  constructor(config: DPMSolverMultistepSchedulerConfig) {
    this.config = config;
    this.betas = makeBetas(config);
    this.alphasCumprod = alphasCumprodFromBetas(this.betas);
    // Keep the first σ finite when the last ᾱ was rescaled to exactly 0 (fp16's smallest subnormal).
    if (config.rescaleBetasZeroSnr) this.alphasCumprod[this.alphasCumprod.length - 1] = 2 ** -24;
    this.trainSigmas = this.alphasCumprod.map((a) => sqrtF32(f32(f32(1 - a) / a)));
    this.sigmas = this.trainSigmas;
    this.timesteps = Array.from(
      { length: config.numTrainTimesteps },
      (_, i) => config.numTrainTimesteps - 1 - i,
    );
    this.modelOutputs = new Array<Float32Array | null>(config.solverOrder).fill(null);
  }

  static fromConfig(raw: Record<string, unknown>): DPMSolverMultistepScheduler {
    return new DPMSolverMultistepScheduler(parseDPMSolverMultistepConfig(raw));
  }

  /** Index of the next step in the schedule (null before the first step). */
  get stepIndex(): number | null {
    return this.stepIdx;
  }

  /** Start index for pipelines that begin mid-schedule (img2img); set before the first step. */
  setBeginIndex(beginIndex = 0): void {
    this.beginIdx = beginIndex;
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    checkInferenceSteps(numInferenceSteps, c.numTrainTimesteps);
    let timesteps = this.spacedTimesteps(numInferenceSteps);
    let sigmas: number[];
    const logSigmas = this.trainSigmas.map((s) => Math.log(s));
    const flipped = Array.from(this.trainSigmas).reverse(); // largest σ first
    if (c.useKarrasSigmas || c.useExponentialSigmas || c.useLuLambdas) {
      if (c.useKarrasSigmas) sigmas = karrasSigmas(flipped, numInferenceSteps);
      else if (c.useLuLambdas) sigmas = luLambdaSigmas(Array.from(logSigmas).reverse(), numInferenceSteps);
      else sigmas = exponentialSigmas(flipped, numInferenceSteps);
      const round = !c.useExponentialSigmas && c.betaSchedule !== 'squaredcos_cap_v2';
      timesteps = sigmas.map((s) => {
        const t = sigmaToT(s, logSigmas);
        return Math.trunc(round ? roundHalfEven(t) : t);
      });
    } else {
      // np.interp at integer timesteps returns the table entries exactly (clamped at the ends).
      const last = this.trainSigmas.length - 1;
      sigmas = timesteps.map((t) => this.trainSigmas[Math.min(Math.max(t, 0), last)] as number);
    }
    const a0 = this.alphasCumprod[0] as number;
    const sigmaLast = c.finalSigmasType === 'sigma_min' ? sqrtF32(f32(f32(1 - a0) / a0)) : 0;
    this.sigmas = Float32Array.from([...sigmas, sigmaLast]);
    this.timesteps = timesteps;
    this.numInferenceSteps = timesteps.length;
    this.modelOutputs = new Array<Float32Array | null>(c.solverOrder).fill(null);
    this.lowerOrderNums = 0;
    this.stepIdx = null;
    this.beginIdx = null;
  }

  /** Timesteps from `timestep_spacing`, after clipping the schedule where λ_t < lambda_min_clipped. */
  private spacedTimesteps(n: number): number[] {
    const c = this.config;
    // searchsorted(flip(λ), lambda_min_clipped): λ decreases with t, so count the clipped (smallest) λs.
    let clippedIdx = 0;
    for (let t = c.numTrainTimesteps - 1; t >= 0; t--) {
      const a = this.alphasCumprod[t] as number;
      if (halfLogSnr(sqrtF32(a), sqrtF32(f32(1 - a))) >= c.lambdaMinClipped) break;
      clippedIdx++;
    }
    const lastTimestep = c.numTrainTimesteps - clippedIdx;
    if (c.timestepSpacing === 'linspace') {
      return numpyLinspace(0, lastTimestep - 1, n + 1)
        .map(roundHalfEven)
        .reverse()
        .slice(0, n);
    }
    if (c.timestepSpacing === 'leading') {
      const ratio = Math.floor(lastTimestep / (n + 1));
      return Array.from({ length: n + 1 }, (_, i) => i * ratio + c.stepsOffset)
        .reverse()
        .slice(0, n);
    }
    const ratio = c.numTrainTimesteps / n;
    return numpyArange(lastTimestep, 0, -ratio).map((t) => Math.trunc(roundHalfEven(t)) - 1);
  }

  scaleModelInput(sample: Float32Array, _timestep: number): Float32Array {
    return sample;
  }

  /** Step index of `timestep` in the schedule (the second match if it occurs twice, last index if absent). */
  indexForTimestep(timestep: number): number {
    const matches: number[] = [];
    this.timesteps.forEach((t, i) => {
      if (t === timestep) matches.push(i);
    });
    if (matches.length === 0) return this.timesteps.length - 1;
    return (matches.length > 1 ? matches[1] : matches[0]) as number;
  }

  /**
   * Model output → the quantity the solver integrates: the data prediction x_θ for DPM-Solver++
   * (x_θ = (x_t − σ_t ε_θ)/α_t, DPM-Solver++ eq. 3), the noise prediction ε_θ for DPM-Solver.
   */
  convertModelOutput(modelOutput: Float32Array, sample: Float32Array, stepIndex: number): Float32Array {
    const { alphaT, sigmaT } = sigmaToAlphaSigmaT(this.sigmas[stepIndex] as number);
    const dataPrediction = this.config.algorithmType.endsWith('++');
    const n = sample.length;
    const out = new Float32Array(n);
    const type = this.config.predictionType;
    for (let i = 0; i < n; i++) {
      const m = modelOutput[i] as number;
      const x = sample[i] as number;
      if (dataPrediction) {
        if (type === 'epsilon') out[i] = f32(x - f32(sigmaT * m)) / alphaT;
        else if (type === 'sample') out[i] = m;
        else out[i] = f32(alphaT * x) - f32(sigmaT * m);
      } else if (type === 'epsilon') out[i] = m;
      else if (type === 'sample') out[i] = f32(x - f32(alphaT * m)) / sigmaT;
      else out[i] = f32(alphaT * m) + f32(sigmaT * x);
    }
    return out;
  }

  step(
    modelOutput: Float32Array,
    timestep: number,
    sample: Float32Array,
    opts?: StepOptions,
  ): SchedulerStepResult {
    const c = this.config;
    if (this.numInferenceSteps === null) {
      throw new KinemaError(
        'SCHEDULER_BAD_CALL',
        'DPMSolverMultistepScheduler.step: call setTimesteps(numInferenceSteps) first',
      );
    }
    checkSameLength(modelOutput, sample, 'DPMSolverMultistepScheduler.step(modelOutput, sample)');
    if (this.stepIdx === null) this.stepIdx = this.beginIdx ?? this.indexForTimestep(timestep);
    const i = this.stepIdx;
    const len = this.timesteps.length;
    if (i >= len)
      throw new KinemaError(
        'SCHEDULER_BAD_CALL',
        `DPMSolverMultistepScheduler.step: all ${len} steps were already taken`,
      );
    // 1. order reduction on the final steps, for stability with few steps
    const lowerOrderFinal =
      i === len - 1 && (c.eulerAtFinal || (c.lowerOrderFinal && len < 15) || c.finalSigmasType === 'zero');
    const lowerOrderSecond = i === len - 2 && c.lowerOrderFinal && len < 15;
    // 2. convert and push onto the multistep history
    const converted = this.convertModelOutput(modelOutput, sample, i);
    this.modelOutputs.shift();
    this.modelOutputs.push(converted);
    const noise = c.algorithmType.startsWith('sde-')
      ? resolveNoise(sample.length, opts, 'DPMSolverMultistepScheduler.step')
      : null;
    // 3. update of the chosen order
    let prev: Float32Array;
    if (c.solverOrder === 1 || this.lowerOrderNums < 1 || lowerOrderFinal) {
      prev = this.firstOrderUpdate(converted, sample, noise);
    } else if (c.solverOrder === 2 || this.lowerOrderNums < 2 || lowerOrderSecond) {
      prev = dpmSecondOrderUpdate(c, this.sigmas, i, this.history(2), sample, noise);
    } else {
      prev = dpmThirdOrderUpdate(c, this.sigmas, i, this.history(3), sample, noise);
    }
    if (this.lowerOrderNums < c.solverOrder) this.lowerOrderNums++;
    this.stepIdx = i + 1;
    return { prevSample: prev };
  }

  /** The last `k` converted model outputs, newest first (m0, m1, ...). */
  private history(k: number): Float32Array[] {
    const out: Float32Array[] = [];
    for (let j = 1; j <= k; j++) {
      const m = this.modelOutputs[this.modelOutputs.length - j];
      if (m === undefined || m === null)
        throw new KinemaError('SCHEDULER_BAD_CALL', 'DPMSolverMultistepScheduler: missing multistep history');
      out.push(m);
    }
    return out;
  }

  /**
   * First-order update (= DDIM), from s = step i to t = step i+1:
   *   DPM-Solver++ (eq. 5 with k=1):  x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) x_θ
   *   DPM-Solver   (eq. 3.7, k=1):    x_t = (α_t/α_s) x_s − σ_t (e^{h} − 1) ε_θ
   *   SDE variants add σ_t sqrt(1 − e^{−2h}) z  (resp. σ_t sqrt(e^{2h} − 1) z).
   */
  private firstOrderUpdate(m: Float32Array, x: Float32Array, noise: Float32Array | null): Float32Array {
    const i = this.stepIdx as number;
    const t = sigmaToAlphaSigmaT(this.sigmas[i + 1] as number);
    const s = sigmaToAlphaSigmaT(this.sigmas[i] as number);
    const h = f32(halfLogSnr(t.alphaT, t.sigmaT) - halfLogSnr(s.alphaT, s.sigmaT));
    const expH = torchExpF32(h);
    const expNegH = torchExpF32(-h);
    switch (this.config.algorithmType) {
      case 'dpmsolver++':
        return linearCombination([
          [f32(t.sigmaT / s.sigmaT), x],
          [-f32(t.alphaT * f32(expNegH - 1)), m],
        ]);
      case 'dpmsolver':
        return linearCombination([
          [f32(t.alphaT / s.alphaT), x],
          [-f32(t.sigmaT * f32(expH - 1)), m],
        ]);
      case 'sde-dpmsolver++': {
        const expNeg2H = torchExpF32(-2 * h);
        return linearCombination([
          [f32(f32(t.sigmaT / s.sigmaT) * expNegH), x],
          [f32(t.alphaT * f32(1 - expNeg2H)), m],
          [f32(t.sigmaT * sqrtF32(f32(1 - expNeg2H))), noise as Float32Array],
        ]);
      }
      case 'sde-dpmsolver':
        return linearCombination([
          [f32(t.alphaT / s.alphaT), x],
          [-f32(2 * f32(t.sigmaT * f32(expH - 1))), m],
          [f32(t.sigmaT * sqrtF32(f32(torchExpF32(2 * h) - 1))), noise as Float32Array],
        ]);
    }
  }

  /**
   * Forward diffusion at the σ of each timestep's schedule index: x = α_t x_0 + σ_t ε.
   * Timesteps are looked up in the current schedule (call setTimesteps first).
   */
  addNoise(original: Float32Array, noise: Float32Array, timesteps: number[]): Float32Array {
    const who = 'DPMSolverMultistepScheduler.addNoise';
    checkSameLength(original, noise, `${who}(original, noise)`);
    const per = batchSliceLength(original.length, timesteps.length, who);
    const out = new Float32Array(original.length);
    timesteps.forEach((timestep, b) => {
      let index: number;
      if (this.beginIdx === null) index = this.indexForTimestep(timestep);
      else index = this.stepIdx ?? this.beginIdx;
      const { alphaT, sigmaT } = sigmaToAlphaSigmaT(this.sigmas[index] as number);
      for (let i = b * per; i < (b + 1) * per; i++) {
        out[i] = f32(alphaT * (original[i] as number)) + f32(sigmaT * (noise[i] as number));
      }
    });
    return out;
  }
}
