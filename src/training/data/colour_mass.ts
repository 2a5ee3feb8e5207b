// The velocity of an object's colour mass: each frame's centroid of the pixels weighted by their closeness to
// the object's RGB colour (a Gaussian of width 40 in RGB distance), fitted by a line over the frames. Unlike
// the oracle, which needs a segmentable object, it also follows the blurred blob of a high-noise one-step
// estimate (the mean of the places the object could be), which is what the direction checks measure.
import type { MotionName } from './world.js';
import { slope } from './oracle.js';

/** The component of velocity (vx, vy) along direction d (left/right/up/down; 0 for other motions). */
export function velocityAlong(d: MotionName, vx: number, vy: number): number {
  return d === 'left' ? -vx : d === 'right' ? vx : d === 'up' ? -vy : d === 'down' ? vy : 0;
}

/** Colour-mass velocity (px/frame of a `size`×`size` RGB24 video) as { vx, vy }. */
export function colourMassVelocity(
  frames: Uint8Array[],
  size: number,
  rgb: readonly number[],
): { vx: number; vy: number } {
  const xs: number[] = [];
  const ys: number[] = [];
  for (const f of frames) {
    let [w, sx, sy] = [0, 0, 0];
    for (let k = 0; k < size * size; k++) {
      const dist2 =
        (f[3 * k]! - rgb[0]!) ** 2 + (f[3 * k + 1]! - rgb[1]!) ** 2 + (f[3 * k + 2]! - rgb[2]!) ** 2;
      const wk = Math.exp(-dist2 / (2 * 40 * 40));
      w += wk;
      sx += wk * (k % size);
      sy += wk * Math.floor(k / size);
    }
    xs.push(w > 0 ? sx / w : size / 2);
    ys.push(w > 0 ? sy / w : size / 2);
  }
  const ts = frames.map((_, i) => i);
  return { vx: slope(ts, xs), vy: slope(ts, ys) };
}
