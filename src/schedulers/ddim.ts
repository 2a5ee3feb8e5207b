// DDIM: Song, Meng & Ermon, "Denoising Diffusion Implicit Models" (arXiv:2010.02502).
// Semantics of diffusers v0.35.2 `DDIMScheduler`; equation numbers refer to the DDIM paper.

import { ConfigReader, readBaseConfig } from './config.js';
import {
  alphasCumprodFromBetas,
  batchSliceLength,
  inferenceTimesteps,
  trainTimesteps,
  checkSameLength,
  checkTrainTimestep,
  f32,
  makeBetas,
  resolveNoise,
  sqrtF32,
  type BaseSchedulerConfig,
  type Scheduler,
  type SchedulerStepResult,
  type StepOptions,
} from './scheduling_utils.js';
import { KinemaError } from '../errors.js';

export interface DDIMSchedulerConfig extends BaseSchedulerConfig {
  readonly className: 'DDIMScheduler';
  /** Clip the predicted x_0 to [-clipSampleRange, clipSampleRange]. */
  clipSample: boolean;
  clipSampleRange: number;
  /** Use alpha-bar = 1 for the step past t = 0 (otherwise alpha-bar of timestep 0). */
  setAlphaToOne: boolean;
}

export function parseDDIMConfig(raw: Record<string, unknown>): DDIMSchedulerConfig {
  const r = new ConfigReader(raw, 'DDIMScheduler');
  return {
    className: 'DDIMScheduler',
    ...readBaseConfig(r, {
      timestepSpacing: 'leading',
      betaSchedules: ['linear', 'scaled_linear', 'squaredcos_cap_v2'],
    }),
    clipSample: r.boolean('clip_sample', true),
    clipSampleRange: r.number('clip_sample_range', 1.0),
    setAlphaToOne: r.boolean('set_alpha_to_one', true),
  };
}

export class DDIMScheduler implements Scheduler {
  readonly config: DDIMSchedulerConfig;
  readonly initNoiseSigma = 1.0;
  readonly order = 1;
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  /** alpha-bar used for the step that goes past timestep 0. */
  readonly finalAlphaCumprod: number;
  timesteps: number[];
  numInferenceSteps: number | null = null;

  constructor(config: DDIMSchedulerConfig) {
    this.config = config;
    this.betas = makeBetas(config);
    this.alphasCumprod = alphasCumprodFromBetas(this.betas);
    this.finalAlphaCumprod = config.setAlphaToOne ? 1.0 : (this.alphasCumprod[0] as number);
    this.timesteps = trainTimesteps(config.numTrainTimesteps);
  }

  static fromConfig(raw: Record<string, unknown>): DDIMScheduler {
    return new DDIMScheduler(parseDDIMConfig(raw));
  }

  setTimesteps(numInferenceSteps: number): void {
    this.timesteps = inferenceTimesteps(this.config, numInferenceSteps);
    this.numInferenceSteps = numInferenceSteps;
  }

  scaleModelInput(sample: Float32Array, _timestep: number): Float32Array {
    return sample;
  }

  private alphaProd(t: number): number {
    return t >= 0 ? (this.alphasCumprod[t] as number) : this.finalAlphaCumprod;
  }

  /** sigma_t(1)² of eq. (16): (1 − ᾱ_{t−1})/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_{t−1}). */
  variance(timestep: number, prevTimestep: number): number {
    const alphaProdT = this.alphaProd(timestep);
    const alphaProdPrev = this.alphaProd(prevTimestep);
    const betaProdT = f32(1 - alphaProdT);
    const betaProdPrev = f32(1 - alphaProdPrev);
    return f32(f32(betaProdPrev / betaProdT) * f32(1 - f32(alphaProdT / alphaProdPrev)));
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
        'DDIMScheduler.step: call setTimesteps(numInferenceSteps) first',
      );
    }
    checkSameLength(modelOutput, sample, 'DDIMScheduler.step(modelOutput, sample)');
    checkTrainTimestep(timestep, c.numTrainTimesteps, 'DDIMScheduler.step');
    const eta = opts?.eta ?? 0;
    // 1. previous timestep t−Δ (Δ = T / numInferenceSteps, as diffusers does for every spacing)
    const prevTimestep = timestep - Math.floor(c.numTrainTimesteps / this.numInferenceSteps);
    // 2. ᾱ_t, ᾱ_{t−1}, 1 − ᾱ_t
    const alphaProdT = this.alphaProd(timestep);
    const alphaProdPrev = this.alphaProd(prevTimestep);
    const sqrtAlphaT = sqrtF32(alphaProdT);
    const sqrtBetaT = sqrtF32(f32(1 - alphaProdT));
    // 3. predicted x_0 ("f_θ(x_t)") and ε, eq. (9)/(12)
    const { x0, eps } = this.predictX0AndEpsilon(modelOutput, sample, sqrtAlphaT, sqrtBetaT);
    // 4. clip x_0
    if (c.clipSample) {
      const r = f32(c.clipSampleRange);
      for (let i = 0; i < x0.length; i++) x0[i] = Math.min(Math.max(x0[i] as number, -r), r);
    }
    // 5. σ_t(η) = η · sqrt((1 − ᾱ_{t−1})/(1 − ᾱ_t)) · sqrt(1 − ᾱ_t/ᾱ_{t−1}), eq. (16)
    const stdDevT = f32(f32(eta) * sqrtF32(this.variance(timestep, prevTimestep)));
    // 6. "direction pointing to x_t" = sqrt(1 − ᾱ_{t−1} − σ_t²) · ε, eq. (12)
    const dirCoeff = sqrtF32(f32(f32(1 - alphaProdPrev) - f32(stdDevT * stdDevT)));
    // 7. x_{t−1} = sqrt(ᾱ_{t−1}) · x_0 + direction (+ σ_t · z), eq. (12)
    const sqrtAlphaPrev = sqrtF32(alphaProdPrev);
    const prev = new Float32Array(sample.length);
    for (let i = 0; i < prev.length; i++) {
      prev[i] = f32(sqrtAlphaPrev * (x0[i] as number)) + f32(dirCoeff * (eps[i] as number));
    }
    if (eta > 0) {
      const noise = resolveNoise(sample.length, opts, 'DDIMScheduler.step');
      for (let i = 0; i < prev.length; i++)
        prev[i] = (prev[i] as number) + f32(stdDevT * (noise[i] as number));
    }
    return { prevSample: prev, predOriginalSample: x0 };
  }

  private predictX0AndEpsilon(
    m: Float32Array,
    x: Float32Array,
    sqrtAlphaT: number,
    sqrtBetaT: number,
  ): { x0: Float32Array; eps: Float32Array } {
    const n = x.length;
    const x0 = new Float32Array(n);
    switch (this.config.predictionType) {
      case 'epsilon': // x_0 = (x_t − sqrt(1 − ᾱ_t) ε) / sqrt(ᾱ_t)
        for (let i = 0; i < n; i++)
          x0[i] = f32((x[i] as number) - f32(sqrtBetaT * (m[i] as number))) / sqrtAlphaT;
        return { x0, eps: m };
      case 'sample': {
        // ε = (x_t − sqrt(ᾱ_t) x_0) / sqrt(1 − ᾱ_t)
        const eps = new Float32Array(n);
        for (let i = 0; i < n; i++)
          eps[i] = f32((x[i] as number) - f32(sqrtAlphaT * (m[i] as number))) / sqrtBetaT;
        return { x0: Float32Array.from(m), eps };
      }
      case 'v_prediction': {
        // v = sqrt(ᾱ_t) ε − sqrt(1 − ᾱ_t) x_0 (Salimans & Ho 2022):
        // x_0 = sqrt(ᾱ_t) x_t − sqrt(1 − ᾱ_t) v, ε = sqrt(ᾱ_t) v + sqrt(1 − ᾱ_t) x_t
        const eps = new Float32Array(n);
        for (let i = 0; i < n; i++) {
          const xi = x[i] as number;
          const mi = m[i] as number;
          x0[i] = f32(sqrtAlphaT * xi) - f32(sqrtBetaT * mi);
          eps[i] = f32(sqrtAlphaT * mi) + f32(sqrtBetaT * xi);
        }
        return { x0, eps };
      }
    }
  }

  /** q(x_t | x_0) = N(sqrt(ᾱ_t) x_0, (1 − ᾱ_t) I): x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε. */
  addNoise(original: Float32Array, noise: Float32Array, timesteps: number[]): Float32Array {
    return addNoiseWithAlphasCumprod(
      this.alphasCumprod,
      original,
      noise,
      timesteps,
      'DDIMScheduler.addNoise',
    );
  }
}

/** DDPM forward process (Ho et al. 2020, eq. 4) on a flat batch, float32 like diffusers' `add_noise`. */
export function addNoiseWithAlphasCumprod(
  alphasCumprod: Float32Array,
  original: Float32Array,
  noise: Float32Array,
  timesteps: number[],
  who: string,
): Float32Array {
  checkSameLength(original, noise, `${who}(original, noise)`);
  const per = batchSliceLength(original.length, timesteps.length, who);
  const out = new Float32Array(original.length);
  timesteps.forEach((t, b) => {
    checkTrainTimestep(t, alphasCumprod.length, who);
    const alphaProd = alphasCumprod[t] as number;
    const sqrtAlpha = sqrtF32(alphaProd);
    const sqrtOneMinus = sqrtF32(f32(1 - alphaProd));
    for (let i = b * per; i < (b + 1) * per; i++) {
      out[i] = f32(sqrtAlpha * (original[i] as number)) + f32(sqrtOneMinus * (noise[i] as number));
    }
  });
  return out;
}
