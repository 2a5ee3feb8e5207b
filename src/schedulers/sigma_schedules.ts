// Alternative σ spacings for the DPM-Solver schedule (float64, like diffusers' numpy code), and the inverse
// map σ → (fractional) training timestep.

import { numpyLinspace } from './scheduling_utils.js';

/**
 * Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative Models", eq. 5, ρ = 7):
 * σ_i = (σ_max^{1/ρ} + i/(n−1) · (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ. `flippedSigmas` is largest-first.
 */
export function karrasSigmas(flippedSigmas: readonly number[], n: number): number[] {
  const rho = 7.0;
  const sigmaMin = flippedSigmas[flippedSigmas.length - 1] as number;
  const sigmaMax = flippedSigmas[0] as number;
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  return numpyLinspace(0, 1, n).map((ramp) => (maxInvRho + ramp * (minInvRho - maxInvRho)) ** rho);
}

/** σ spaced uniformly in log σ from σ_max to σ_min. `flippedSigmas` is largest-first. */
export function exponentialSigmas(flippedSigmas: readonly number[], n: number): number[] {
  const sigmaMin = flippedSigmas[flippedSigmas.length - 1] as number;
  const sigmaMax = flippedSigmas[0] as number;
  return numpyLinspace(Math.log(sigmaMax), Math.log(sigmaMin), n).map(Math.exp);
}

/**
 * Lu et al. 2022 (DPM-Solver, Sec. 3.3 "uniform λ" step size): log σ spaced uniformly.
 * `flippedLogSigmas` is log σ per training timestep, largest first.
 */
export function luLambdaSigmas(flippedLogSigmas: readonly number[], n: number): number[] {
  const lambdaMin = flippedLogSigmas[flippedLogSigmas.length - 1] as number;
  const lambdaMax = flippedLogSigmas[0] as number;
  return numpyLinspace(0, 1, n).map((ramp) => Math.exp(lambdaMax + ramp * (lambdaMin - lambdaMax)));
}

/**
 * Fractional training timestep whose σ is `sigma`: linear interpolation in log σ between the two
 * neighbouring training timesteps (as diffusers' `_sigma_to_t`); `logSigmas` is ascending in t.
 */
export function sigmaToT(sigma: number, logSigmas: ArrayLike<number>): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  // low = the last index with log σ_i <= log σ (0 if none), at most len − 2.
  let low = 0;
  for (let i = 0; i < logSigmas.length; i++) if (logSigma - (logSigmas[i] as number) >= 0) low = i;
  low = Math.min(low, logSigmas.length - 2);
  const lowVal = logSigmas[low] as number;
  const highVal = logSigmas[low + 1] as number;
  const w = Math.min(Math.max((lowVal - logSigma) / (lowVal - highVal), 0), 1);
  return (1 - w) * low + w * (low + 1);
}
