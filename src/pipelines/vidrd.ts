// VidRD ("Reuse and Diffuse", Gu et al. 2023) as a mode of the chunked long-video core: the next clip reuses
// the latents and the noise of the one before, with the same single model and no extra network.
//
// With chunk length F, overlap O and chunk k ≥ 1 (frame i of the chunk; the first O frames overlap the
// previous chunk's last O frames, which are already written):
// 1. Frame-level Noise Reversion (FNR): the starting noise reuses the previous chunk's starting noise. The
//    overlap frames take the noise their frames had (frame i ← previous frame F − O + i); the new frames take
//    it in reverse frame order, mirrored at the boundary (frame O + j ← previous frame F − 1 − j), so the
//    first new frame starts from the noise of the last frame on screen. With O = 0 this is the paper's
//    plain reversal of the whole clip (frame i ← F − 1 − i).
// 2. Past-dependent Noise Sampling (PNS): new frame O + j, at distance d = j + 1 from the reused frames, mixes
//    in fresh noise δ with weight w_d = min(1, d / W): ε = √(1 − w_d) · ε_FNR + √w_d · δ (variance kept at 1).
//    W (frames, default F − O) is the window over which the fresh share grows from 1/W to all.
// 3. Denoising with Staged Guidance (DSG): stage boundaries b_1 < … < b_K (in steps). After every step i
//    (and on the starting latents, as step 0) the overlap frames are pulled toward the written latents
//    noised to the current level with the chunk's own overlap noise, x ← (1 − s)·x + s·x̃_t, with strength
//    s = 1 − k/K in stage k (steps [b_k, b_{k+1}), b_0 = 0) and s = 0 from b_K on: the first stage copies the
//    previous clip exactly, later stages loosen the hold and the last runs free so new content can appear.
//    Without DSG (`dsg: null`) the hold is s = 1 at every step (plain replacement).
// See docs/vidrd.md for where the paper is vague and why these choices.
import { KinemaError } from '../errors.js';
import { levelAfter, renoise } from './long_video/chunked.js';
import type { ChunkContext, ChunkPlan, LongVideoMode } from './long_video/chunked.js';
import { concatFrames, latentLength, setFrames, sliceFrames } from './long_video/latent_frames.js';
import type { LatentShape } from './long_video/latent_frames.js';

export interface VidrdOptions {
  /** Frame-level Noise Reversion (default true). */
  readonly fnr?: boolean;
  /** PNS window W in frames (≥ 1); null: off. Default F − O when FNR is on, off without FNR. */
  readonly pns?: number | null;
  /** DSG stage boundaries in steps (strictly increasing, each in [1, steps]); null: off. Default 40 %, 70 %. */
  readonly dsg?: readonly number[] | null;
}

/** The default DSG stage boundaries for a step count: 40 % and 70 % of the steps. */
export function defaultDsgStages(steps: number): number[] {
  const b = [Math.max(1, Math.round(0.4 * steps)), Math.max(1, Math.round(0.7 * steps))];
  return b[1]! > b[0]! ? b : [b[0]!];
}

/** FNR: the previous chunk's starting noise [1, C, F, h, w] rearranged for the next chunk (see the header). */
export function fnrNoise(previousNoise: Float32Array, shape: LatentShape, overlap: number): Float32Array {
  const f = shape.frames;
  const parts: Float32Array[] = [];
  if (overlap > 0) parts.push(sliceFrames(previousNoise, shape, f - overlap, overlap));
  for (let j = 0; j < f - overlap; j++) parts.push(sliceFrames(previousNoise, shape, f - 1 - j, 1));
  return concatFrames(parts, shape.channels, shape.height * shape.width);
}

/** PNS: the weight of fresh noise at distance d ≥ 1 from the reused frames, w_d = min(1, d / W). */
export function pnsWeight(distance: number, window: number): number {
  return Math.min(1, distance / window);
}

/** PNS in place on a chunk's starting noise: new frame O + j mixes in frame j of `fresh` (F − O frames). */
export function pnsMix(
  noise: Float32Array,
  fresh: Float32Array,
  shape: LatentShape,
  overlap: number,
  window: number,
): void {
  const n = shape.frames - overlap;
  const hw = shape.height * shape.width;
  for (let c = 0; c < shape.channels; c++)
    for (let j = 0; j < n; j++) {
      const w = pnsWeight(j + 1, window);
      const [keep, add] = [Math.sqrt(1 - w), Math.sqrt(w)];
      const at = (c * shape.frames + overlap + j) * hw;
      const src = (c * n + j) * hw;
      for (let k = 0; k < hw; k++) noise[at + k] = keep * noise[at + k]! + add * fresh[src + k]!;
    }
}

/** DSG: the hold on the overlap frames during step `step` for stage boundaries `stages` (null: always 1). */
export function dsgStrength(step: number, stages: readonly number[] | null): number {
  if (stages === null) return 1;
  const k = stages.findIndex((b) => step < b);
  return k === -1 ? 0 : 1 - k / stages.length;
}

interface Resolved {
  readonly fnr: boolean;
  readonly pns: number | null;
  readonly dsg: readonly number[] | null;
}

function resolve(o: VidrdOptions, plan: ChunkPlan, steps: number): Resolved {
  const fnr = o.fnr ?? true;
  const pns = o.pns === undefined ? (fnr ? plan.chunk - plan.overlap : null) : o.pns;
  const dsg = o.dsg === undefined ? defaultDsgStages(steps) : o.dsg;
  return { fnr, pns, dsg };
}

/** Named errors for VidRD parameters that cannot work with this plan and step count. */
export function checkVidrd(o: VidrdOptions, plan: ChunkPlan, steps: number): void {
  const r = resolve(o, plan, steps);
  if (r.pns !== null) {
    if (!(Number.isInteger(r.pns) && r.pns >= 1))
      throw new KinemaError('VIDRD_BAD_PNS', `--pns must be a window of ≥ 1 frames, got ${r.pns}`);
    if (!r.fnr)
      throw new KinemaError(
        'VIDRD_PNS_NEEDS_FNR',
        '--pns mixes fresh noise into the reused (FNR) noise; with --fnr off there is none to mix into',
      );
  }
  if (r.dsg !== null) {
    if (r.dsg.length === 0) throw new KinemaError('VIDRD_BAD_DSG', '--dsg needs at least one stage boundary');
    r.dsg.forEach((b, i) => {
      if (!Number.isInteger(b) || b < 1)
        throw new KinemaError('VIDRD_BAD_DSG', `--dsg stage boundary ${b} must be an integer ≥ 1`);
      if (b > steps)
        throw new KinemaError(
          'VIDRD_DSG_PAST_STEPS',
          `--dsg stage boundary ${b} is past the step count (--steps ${steps})`,
        );
      if (i > 0 && b <= r.dsg![i - 1]!)
        throw new KinemaError(
          'VIDRD_BAD_DSG',
          `--dsg stage boundaries must increase, got ${r.dsg!.join(',')}`,
        );
    });
  }
}

/** VidRD as a long-video mode (FNR + PNS for the starting noise, DSG for the overlap frames). */
export function vidrdMode(o: VidrdOptions = {}): LongVideoMode {
  let r: Resolved | null = null;
  // The current chunk's own starting noise of its overlap frames (the noise its hold target uses).
  let overlapNoise: { chunk: number; noise: Float32Array } | null = null;
  const settings = (c: ChunkContext): Resolved => (r ??= resolve(o, c.plan, c.timesteps.length));
  return {
    name: 'vidrd',
    check: (plan, steps) => checkVidrd(o, plan, steps),
    initialLatents(c) {
      const s = settings(c);
      const ov = c.plan.overlap;
      const prev = c.previous;
      const noise =
        prev && s.fnr ? fnrNoise(prev.initialNoise, c.shape, ov) : c.generator.normal(latentLength(c.shape));
      if (prev && s.fnr && s.pns !== null) {
        const fresh = c.generator.normal(latentLength({ ...c.shape, frames: c.shape.frames - ov }));
        pnsMix(noise, fresh, c.shape, ov, s.pns);
      }
      overlapNoise = { chunk: c.index, noise: sliceFrames(noise, c.shape, 0, ov) };
      return noise;
    },
    guide(c, step, latents) {
      const prev = c.previous;
      const ov = c.plan.overlap;
      if (!prev || ov === 0 || overlapNoise?.chunk !== c.index) return;
      const strength = dsgStrength(Math.max(0, step), settings(c).dsg);
      if (strength === 0) return;
      const written = sliceFrames(prev.final, c.shape, c.plan.chunk - ov, ov);
      const target = renoise(written, overlapNoise.noise, levelAfter(c, step), c.alphasCumprod);
      if (strength < 1) {
        const current = sliceFrames(latents, c.shape, 0, ov);
        for (let i = 0; i < target.length; i++)
          target[i] = (1 - strength) * current[i]! + strength * target[i]!;
      }
      setFrames(latents, c.shape, 0, target);
    },
  };
}
