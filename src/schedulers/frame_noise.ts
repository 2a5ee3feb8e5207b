import { KinemaError } from '../errors.js';
// Frame-correlated noise for video diffusion: the "mixed noise" prior of PYoCo (Ge et al. 2023, "Preserve Your
// Own Correlation"). Each frame's noise is a shared component common to all frames of the clip plus its own:
//   ε[b, c, f, ·] = √ρ · s[b, c, ·] + √(1 − ρ) · e[b, c, f, ·],   s, e ~ N(0, I) independent,
// so every element is still N(0, 1) and two frames of a clip correlate with coefficient ρ (PYoCo's α² / (1 + α²)).
// A model trained on such noise (Kinema's UNet3D config key `frame_noise_shared` = ρ) must be sampled from
// initial latents made the same way: the layout the noise suggests is then shared by the frames, and the model
// learns only what changes between them.

/** Checks ρ: a number in [0, 1). */
export function checkFrameNoiseShared(rho: number, what = 'frame_noise_shared'): number {
  if (typeof rho !== 'number' || !(rho >= 0 && rho < 1))
    throw new KinemaError('SCHEDULER_BAD_CALL', `${what} must be a number in [0, 1), got ${String(rho)}`);
  return rho;
}

/**
 * Mixes `shared` ([B, C, h, w], one draw per clip and channel) into `noise` ([B, C, F, h, w], one draw per
 * frame) in place with weight ρ, as above. Returns `noise`. ρ = 0 leaves it unchanged.
 */
export function mixFrameNoise(
  noise: Float32Array,
  shared: Float32Array,
  shape: readonly number[],
  rho: number,
): Float32Array {
  checkFrameNoiseShared(rho);
  if (shape.length !== 5)
    throw new KinemaError(
      'SCHEDULER_BAD_CALL',
      `mixFrameNoise: shape must be [B, C, F, h, w], got [${shape}]`,
    );
  const [b, c, f, h, w] = shape as [number, number, number, number, number];
  const hw = h * w;
  if (noise.length !== b * c * f * hw)
    throw new KinemaError(
      'SCHEDULER_BAD_CALL',
      `mixFrameNoise: noise has ${noise.length} values, shape [${shape}] needs ${b * c * f * hw}`,
    );
  if (shared.length !== b * c * hw)
    throw new KinemaError(
      'SCHEDULER_BAD_CALL',
      `mixFrameNoise: shared has ${shared.length} values, [${b}, ${c}, ${h}, ${w}] needs ${b * c * hw}`,
    );
  if (rho === 0) return noise;
  const a = Math.sqrt(rho);
  const e = Math.sqrt(1 - rho);
  for (let bc = 0; bc < b * c; bc++)
    for (let fi = 0; fi < f; fi++) {
      const at = (bc * f + fi) * hw;
      for (let k = 0; k < hw; k++) noise[at + k] = a * shared[bc * hw + k]! + e * noise[at + k]!;
    }
  return noise;
}
