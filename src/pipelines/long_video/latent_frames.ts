import { KinemaError } from '../../errors.js';
// Frame slices of one video's latents in the UNet's layout [1, C, F, h, w] (channel-major: element
// ((c · F) + f) · hw + k). The chunked long-video core moves frames between chunks with these; they copy.

/** The size of one video's latents: channels, frames and the spatial size h × w. */
export interface LatentShape {
  readonly channels: number;
  readonly frames: number;
  readonly height: number;
  readonly width: number;
}

export const latentLength = (s: LatentShape): number => s.channels * s.frames * s.height * s.width;

/** Frames [from, from + count) of `src` (shape `s`) as latents of `count` frames. */
export function sliceFrames(src: Float32Array, s: LatentShape, from: number, count: number): Float32Array {
  checkRange(s, from, count, 'sliceFrames');
  const hw = s.height * s.width;
  const out = new Float32Array(s.channels * count * hw);
  for (let c = 0; c < s.channels; c++) {
    const at = (c * s.frames + from) * hw;
    out.set(src.subarray(at, at + count * hw), c * count * hw);
  }
  return out;
}

/** Writes `frames` (latents of `count` frames) into frames [at, at + count) of `dst` (shape `s`), in place. */
export function setFrames(dst: Float32Array, s: LatentShape, at: number, frames: Float32Array): void {
  const hw = s.height * s.width;
  const count = frames.length / (s.channels * hw);
  if (!Number.isInteger(count))
    throw new KinemaError('PIPELINE_BAD_INPUT', `setFrames: ${frames.length} values are not whole frames`);
  checkRange(s, at, count, 'setFrames');
  for (let c = 0; c < s.channels; c++)
    dst.set(frames.subarray(c * count * hw, (c + 1) * count * hw), (c * s.frames + at) * hw);
}

/** Frame `f` of channel `c` as a view (no copy): hw values. */
export function framePlane(src: Float32Array, s: LatentShape, c: number, f: number): Float32Array {
  const hw = s.height * s.width;
  return src.subarray((c * s.frames + f) * hw, (c * s.frames + f + 1) * hw);
}

/** Concatenates latents along the frame axis (each an array of whole frames of `channels` × `hw`). */
export function concatFrames(parts: readonly Float32Array[], channels: number, hw: number): Float32Array {
  const counts = parts.map((p) => p.length / (channels * hw));
  const total = counts.reduce((a, b) => a + b, 0);
  const out = new Float32Array(channels * total * hw);
  let f0 = 0;
  parts.forEach((p, i) => {
    const n = counts[i]!;
    for (let c = 0; c < channels; c++)
      out.set(p.subarray(c * n * hw, (c + 1) * n * hw), (c * total + f0) * hw);
    f0 += n;
  });
  return out;
}

function checkRange(s: LatentShape, from: number, count: number, who: string): void {
  if (!(
    Number.isInteger(from) &&
    Number.isInteger(count) &&
    from >= 0 &&
    count >= 0 &&
    from + count <= s.frames
  ))
    throw new KinemaError(
      'PIPELINE_BAD_INPUT',
      `${who}: frames [${from}, ${from + count}) are outside 0..${s.frames}`,
    );
}

/** RGB24 frames (each width×height) → float32 [n, 3, H, W] with v / 127.5 − 1 in [−1, 1] (the VAE's range). */
export function toFloatFrames(frames: readonly Uint8Array[], width: number, height: number): Float32Array {
  const plane = width * height;
  const out = new Float32Array(frames.length * 3 * plane);
  frames.forEach((f, n) => {
    for (let k = 0; k < plane; k++)
      for (let c = 0; c < 3; c++) out[(n * 3 + c) * plane + k] = f[k * 3 + c]! / 127.5 - 1;
  });
  return out;
}
