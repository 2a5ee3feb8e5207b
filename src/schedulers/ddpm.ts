// DDPM: Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models" (arXiv:2006.11239).
// Semantics of diffusers v0.35.2 `DDPMScheduler`; equation numbers refer to the DDPM paper.

import { ConfigReader, readBaseConfig } from './config.js';
import { addNoiseWithAlphasCumprod } from './ddim.js';
import {
  alphasCumprodFromBetas,
  inferenceTimesteps,
  trainTimesteps,
  checkSameLength,
  checkTrainTimestep,
  f32,
  makeBetas,
  resolveNoise,
  sqrtF32,
  torchExpF32,
  type BaseSchedulerConfig,
  type Scheduler,
  type SchedulerStepResult,
  type StepOptions,
} from './scheduling_utils.js';
import { KinemaError } from '../errors.js';

/** Variance of the reverse step: β̃_t (fixed_small, eq. 7) or β_t (fixed_large); `_log` = sampled as exp(½ log). */
export type DDPMVarianceType = 'fixed_small' | 'fixed_small_log' | 'fixed_large';
const VARIANCE_TYPES: readonly DDPMVarianceType[] = ['fixed_small', 'fixed_small_log', 'fixed_large'];

export interface DDPMSchedulerConfig extends BaseSchedulerConfig {
  readonly className: 'DDPMScheduler';
  varianceType: DDPMVarianceType;
  clipSample: boolean;
  clipSampleRange: number;
}

export function parseDDPMConfig(raw: Record<string, unknown>): DDPMSchedulerConfig {
  const r = new ConfigReader(raw, 'DDPMScheduler');
  r.rejectUnless(
    'variance_type',
    (v) => v === null || (typeof v === 'string' && (VARIANCE_TYPES as readonly string[]).includes(v)),
    `implemented: ${VARIANCE_TYPES.join(', ')}; learned variances need the channel layout`,
  );
  return {
    className: 'DDPMScheduler',
    ...readBaseConfig(r, {
      timestepSpacing: 'leading',
      betaSchedules: ['linear', 'scaled_linear', 'squaredcos_cap_v2', 'sigmoid'],
    }),
    // null (Python None) falls through diffusers' variance branches and behaves as fixed_small.
    varianceType: r.nullableChoice('variance_type', VARIANCE_TYPES, 'fixed_small') ?? 'fixed_small',
    clipSample: r.boolean('clip_sample', true),
    clipSampleRange: r.number('clip_sample_range', 1.0),
  };
}

export class DDPMScheduler implements Scheduler {
  readonly config: DDPMSchedulerConfig;
  readonly initNoiseSigma = 1.0;
  readonly order = 1;
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  timesteps: number[];
  numInferenceSteps: number | null = null;

  constructor(config: DDPMSchedulerConfig) {
    this.config = config;
    this.betas = makeBetas(config, true);
    this.alphasCumprod = alphasCumprodFromBetas(this.betas);
    this.timesteps = trainTimesteps(config.numTrainTimesteps);
  }

  static fromConfig(raw: Record<string, unknown>): DDPMScheduler {
    return new DDPMScheduler(parseDDPMConfig(raw));
  }

  setTimesteps(numInferenceSteps: number): void {
    this.timesteps = inferenceTimesteps(this.config, numInferenceSteps);
    this.numInferenceSteps = numInferenceSteps;
  }

  scaleModelInput(sample: Float32Array, _timestep: number): Float32Array {
    return sample;
  }

  /** The timestep after `timestep` in the schedule (−1 after the last); t − 1 before setTimesteps. */
  previousTimestep(timestep: number): number {
    if (this.numInferenceSteps === null) return timestep - 1;
    const index = this.timesteps.indexOf(timestep);
    if (index < 0) {
      throw new KinemaError(
        'SCHEDULER_BAD_CALL',
        `DDPMScheduler: timestep ${timestep} is not in the current schedule`,
      );
    }
    return index === this.timesteps.length - 1 ? -1 : (this.timesteps[index + 1] as number);
  }

  /** Standard deviation of the noise added at `timestep` (the square root of the chosen variance). */
  noiseStd(timestep: number): number {
    const prevT = this.previousTimestep(timestep);
    const alphaProdT = this.alphasCumprod[timestep] as number;
    const alphaProdPrev = prevT >= 0 ? (this.alphasCumprod[prevT] as number) : 1;
    const currentBetaT = f32(1 - f32(alphaProdT / alphaProdPrev));
    // β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t, eq. (7); clamped away from 0 because log is taken below.
    const posteriorVariance = Math.max(
      f32(f32(f32(1 - alphaProdPrev) / f32(1 - alphaProdT)) * currentBetaT),
      f32(1e-20),
    );
    switch (this.config.varianceType) {
      case 'fixed_small':
        return sqrtF32(posteriorVariance);
      case 'fixed_small_log': // σ = exp(½ log β̃_t)
        return torchExpF32(f32(0.5 * f32(Math.log(posteriorVariance))));
      case 'fixed_large': // σ² = β_t (Sec. 3.2: both choices gave similar results)
        return sqrtF32(currentBetaT);
    }
  }

  step(
    modelOutput: Float32Array,
    timestep: number,
    sample: Float32Array,
    opts?: StepOptions,
  ): SchedulerStepResult {
    const c = this.config;
    checkSameLength(modelOutput, sample, 'DDPMScheduler.step(modelOutput, sample)');
    checkTrainTimestep(timestep, c.numTrainTimesteps, 'DDPMScheduler.step');
    const prevT = this.previousTimestep(timestep);
    // 1. ᾱ_t, ᾱ_{t−1}, β̄ = 1 − ᾱ, and the per-step α_t = ᾱ_t/ᾱ_{t−1}, β_t = 1 − α_t
    const alphaProdT = this.alphasCumprod[timestep] as number;
    const alphaProdPrev = prevT >= 0 ? (this.alphasCumprod[prevT] as number) : 1;
    const betaProdT = f32(1 - alphaProdT);
    const betaProdPrev = f32(1 - alphaProdPrev);
    const currentAlphaT = f32(alphaProdT / alphaProdPrev);
    const currentBetaT = f32(1 - currentAlphaT);
    // 2. predicted x_0 from the model output, eq. (15)
    const x0 = this.predictX0(modelOutput, sample, alphaProdT, betaProdT);
    // 3. clip x_0
    if (c.clipSample) {
      const r = f32(c.clipSampleRange);
      for (let i = 0; i < x0.length; i++) x0[i] = Math.min(Math.max(x0[i] as number, -r), r);
    }
    // 4. posterior mean coefficients of q(x_{t−1} | x_t, x_0), eq. (7):
    //    μ̃ = sqrt(ᾱ_{t−1}) β_t / (1 − ᾱ_t) · x_0 + sqrt(α_t) (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t
    const x0Coeff = f32(f32(sqrtF32(alphaProdPrev) * currentBetaT) / betaProdT);
    const sampleCoeff = f32(f32(sqrtF32(currentAlphaT) * betaProdPrev) / betaProdT);
    // 5. μ̃_t
    const prev = new Float32Array(sample.length);
    for (let i = 0; i < prev.length; i++) {
      prev[i] = f32(x0Coeff * (x0[i] as number)) + f32(sampleCoeff * (sample[i] as number));
    }
    // 6. x_{t−1} = μ̃_t + σ_t z (no noise at t = 0), Algorithm 2 line 4
    if (timestep > 0) {
      const noise = resolveNoise(sample.length, opts, 'DDPMScheduler.step');
      const std = this.noiseStd(timestep);
      for (let i = 0; i < prev.length; i++) prev[i] = (prev[i] as number) + f32(std * (noise[i] as number));
    }
    return { prevSample: prev, predOriginalSample: x0 };
  }

  private predictX0(m: Float32Array, x: Float32Array, alphaProdT: number, betaProdT: number): Float32Array {
    const sqrtAlpha = sqrtF32(alphaProdT);
    const sqrtBeta = sqrtF32(betaProdT);
    const n = x.length;
    const x0 = new Float32Array(n);
    switch (this.config.predictionType) {
      case 'epsilon': // x_0 = (x_t − sqrt(1 − ᾱ_t) ε) / sqrt(ᾱ_t)
        for (let i = 0; i < n; i++)
          x0[i] = f32((x[i] as number) - f32(sqrtBeta * (m[i] as number))) / sqrtAlpha;
        return x0;
      case 'sample':
        x0.set(m);
        return x0;
      case 'v_prediction': // x_0 = sqrt(ᾱ_t) x_t − sqrt(1 − ᾱ_t) v
        for (let i = 0; i < n; i++)
          x0[i] = f32(sqrtAlpha * (x[i] as number)) - f32(sqrtBeta * (m[i] as number));
        return x0;
    }
  }

  /** q(x_t | x_0), eq. (4): x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε. */
  addNoise(original: Float32Array, noise: Float32Array, timesteps: number[]): Float32Array {
    return addNoiseWithAlphasCumprod(
      this.alphasCumprod,
      original,
      noise,
      timesteps,
      'DDPMScheduler.addNoise',
    );
  }
}
