// Test helper: deterministic synthetic images and videos with known motion.
import { blurSeparable, gaussianKernel } from '../../src/metrics/image_ops.js';

/** Deterministic uniform [0, 1) generator (32-bit LCG). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Smooth random texture in [0, 255]: blurred white noise, contrast-stretched. */
export function texture(width: number, height: number, sigma: number, seed = 1): Float32Array {
  const r = rng(seed);
  const noise = new Float32Array(width * height);
  for (let i = 0; i < noise.length; i++) noise[i] = r();
  const b = blurSeparable(noise, width, height, gaussianKernel(sigma));
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of b) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return b.map((v) => ((v - lo) / (hi - lo)) * 255);
}

/** Bilinear sample with clamped coordinates. */
export function sample(img: Float32Array, width: number, height: number, x: number, y: number): number {
  const cx = Math.min(Math.max(x, 0), width - 1);
  const cy = Math.min(Math.max(y, 0), height - 1);
  const x0 = Math.floor(cx);
  const y0 = Math.floor(cy);
  const x1 = Math.min(x0 + 1, width - 1);
  const y1 = Math.min(y0 + 1, height - 1);
  const ax = cx - x0;
  const ay = cy - y0;
  const top = (1 - ax) * img[y0 * width + x0]! + ax * img[y0 * width + x1]!;
  const bot = (1 - ax) * img[y1 * width + x0]! + ax * img[y1 * width + x1]!;
  return (1 - ay) * top + ay * bot;
}

/** The image with its content moved by (dx, dy): out(x, y) = img(x − dx, y − dy), bilinear resampling. */
export function translate(
  img: Float32Array,
  width: number,
  height: number,
  dx: number,
  dy: number,
): Float32Array {
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) out[y * width + x] = sample(img, width, height, x - dx, y - dy);
  }
  return out;
}

/** Three independent textures as the R, G, B planes of an RGB24 image, each moved by (dx, dy). */
export function rgbFrame(
  planes: Float32Array[],
  width: number,
  height: number,
  dx: number,
  dy: number,
): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  planes.forEach((p, c) => {
    const moved = translate(p, width, height, dx, dy);
    for (let i = 0; i < moved.length; i++) out[i * 3 + c] = Math.round(moved[i]!);
  });
  return out;
}

/** A video of a textured scene panned so that frame t is displaced by `offsets[t]` from the first. */
export function panVideo(width: number, height: number, offsets: [number, number][], seed = 3): Uint8Array[] {
  const planes = [0, 1, 2].map((c) => texture(width, height, 2.5, seed + c));
  return offsets.map(([dx, dy]) => rgbFrame(planes, width, height, dx, dy));
}

/** A constant-colour RGB24 frame. */
export function solidFrame(width: number, height: number, rgb: [number, number, number]): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) out.set(rgb, i * 3);
  return out;
}

/** Pseudo-random RGB24 image (31-bit LCG, byte = bits 16..23) that the Pillow reference values were computed from. */
export function lcgImage(width: number, height: number, seed: number): Uint8Array {
  let s = seed;
  const out = new Uint8Array(width * height * 3);
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    out[i] = (s >>> 16) & 255;
  }
  return out;
}
