// DSDN's motion decomposer and motion combiner (Liu et al. 2023, §3 "Motion decomposition and combination").
// The paper says the decomposer takes "every sequential frame pair" and keeps the temporal length, and that
// the combiner "fuses content features with adjacent motion features"; it gives no formula. Kinema's choice
// (docs/dsdn.md):
//   decompose: m_1 = 0, m_l = (z_l − z_{l−1}) / σ_m          (σ_m: the motion features' scale, in the config)
//   combine:   y_1 = c_1, y_l = (1 − γ)·c_l + γ·(y_{l−1} + σ_m·m_l)
// so combine(z, decompose(z)) = z for every γ (tested): the combiner only changes anything when the two streams
// disagree, and γ says how far the frames follow the motion stream's frame-to-frame changes (γ = 1: integrate
// the motion from the first content frame; γ = 0: the content frames alone).
import { KinemaError } from '../../errors.js';

/** Latents laid out [B, C, F, h, w] (the UNet's sample layout), as a flat array with its shape. */
export type LatentShape = readonly [number, number, number, number, number];

function check(shape: LatentShape, ...arrays: Float32Array[]): void {
  const n = shape.reduce((a, b) => a * b, 1);
  if (shape.length !== 5 || arrays.some((a) => a.length !== n))
    throw new KinemaError(
      'PIPELINE_BAD_INPUT',
      `DSDN: latents must be [B, C, F, h, w] = ${n} values, got shape [${shape.join(', ')}] and ` +
        `${arrays.map((a) => a.length).join(', ')} values`,
    );
}

/** Motion features [B, C, F, h, w] of frame latents z: scaled frame-to-frame differences, zero for frame 0. */
export function decomposeMotion(z: Float32Array, shape: LatentShape, motionScale: number): Float32Array {
  check(shape, z);
  const [b, c, f, h, w] = shape;
  const hw = h * w;
  const inv = 1 / motionScale;
  const m = new Float32Array(z.length);
  for (let bc = 0; bc < b * c; bc++)
    for (let fi = 1; fi < f; fi++) {
      const at = (bc * f + fi) * hw;
      for (let k = 0; k < hw; k++) m[at + k] = (z[at + k]! - z[at - hw + k]!) * inv;
    }
  return m;
}

/** Frame latents from content frames c and motion features m (the inverse of `decomposeMotion` when they agree). */
export function combineMotion(
  content: Float32Array,
  motion: Float32Array,
  shape: LatentShape,
  motionScale: number,
  gamma: number,
): Float32Array {
  check(shape, content, motion);
  if (!(gamma >= 0 && gamma <= 1))
    throw new KinemaError('PIPELINE_BAD_INPUT', `DSDN: combiner γ must be in [0, 1], got ${gamma}`);
  const [b, c, f, h, w] = shape;
  const hw = h * w;
  const y = new Float32Array(content.length);
  for (let bc = 0; bc < b * c; bc++) {
    const first = bc * f * hw;
    y.set(content.subarray(first, first + hw), first);
    for (let fi = 1; fi < f; fi++) {
      const at = (bc * f + fi) * hw;
      for (let k = 0; k < hw; k++)
        y[at + k] =
          (1 - gamma) * content[at + k]! + gamma * (y[at - hw + k]! + motionScale * motion[at + k]!);
    }
  }
  return y;
}

/** Root mean square of the unscaled frame-to-frame differences (what σ_m is set to from training latents). */
export function motionRms(z: Float32Array, shape: LatentShape): number {
  const m = decomposeMotion(z, shape, 1);
  const [, , f] = shape;
  let s = 0;
  for (const v of m) s += v * v;
  const counted = (m.length * (f - 1)) / f; // frame 0 is zero by construction
  return counted > 0 ? Math.sqrt(s / counted) : 0;
}
