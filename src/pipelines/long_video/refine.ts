// StreamingT2V's third stage (Henschel et al. 2024, §4.3 "Auto-regressive Video Enhancement"): a finished video
// is refined chunk by chunk with SDEdit — each chunk of F frames (default 24) is encoded, noised to T' (default
// 600) and denoised from there by a text-to-video UNet (any `TextToVideoPipeline`: a refiner model, or the
// generating model itself). Consecutive chunks share O frames (default 8), and three things keep the seams
// invisible, each one an ablation row (`blend`):
//   'independent'  — every chunk draws its own noise, no blending (the seam is wherever the output switches);
//   'shared-noise' — the overlap frames of chunk k start from the same noise as the same frames in chunk k−1
//                    (so from identical x_T'), no blending;
//   'random'       — shared noise plus randomized blending: for chunk k > 0, after every denoising step a split
//                    f_thr is drawn uniformly in [0, O) (a Generator seeded per video, separate from the noise,
//                    so all rows start from the same noise) and chunk k's overlap frames [0, f_thr) are
//                    overwritten by chunk k−1's latents of the same frames after the same step. The release cuts
//                    hard at a random offset in [0, O − 1]; the paper's concatenation at a random frame is the
//                    same thing. Averaged over steps the seam is smeared across the whole overlap, which no
//                    fixed cut does.
// Which frames are output: chunk k writes frames [0, len − O) of its final latents (all of them for the last
// chunk); chunk k − 1's own last O frames are never written. In 'random' mode chunk k's final latents equal
// chunk k − 1's on [0, f_thr) of the last step, so the overlap shows the previous chunk before the final split
// and the current one after it — the release's cut. Not chunk k − 1's version, because the split is drawn only
// while chunk k is denoised and a chunk must be written when it is final to stream. The ablation rows use the
// same rule (a hard cut at the overlap's first frame), so every row's seam lies in the windows eval:refine
// measures.
// Memory stays flat in the video's length: the input is pulled frame by frame (one chunk plus one frame of
// look-ahead), and only the previous chunk's overlap is kept — its x_0 latents, its noise and its overlap
// latents after every step (steps × O frames). A video shorter than F frames is one chunk; the last chunk may
// be shorter than F (it always has at least one frame past its overlap).
import { hostTensor } from '../../engine/runtime.js';
import type { HostTensor } from '../../engine/runtime.js';
import { Generator } from '../../engine/random.js';
import { KinemaError } from '../../errors.js';
import type { Scheduler } from '../../schedulers/index.js';
import { postprocess, TextToVideoPipeline } from '../text_to_video.js';
import type { TextToVideoOptions, VideoUNet } from '../text_to_video.js';
import { concatFrames, setFrames, sliceFrames } from './latent_frames.js';
import type { LatentShape } from './latent_frames.js';

export const REFINE_BLENDS = ['random', 'shared-noise', 'independent'] as const;
export type RefineBlend = (typeof REFINE_BLENDS)[number];
export const REFINE_DEFAULTS = { chunk: 24, overlap: 8, strength: 600, blend: 'random' } as const;

/** The options passed through to every chunk's denoising loop, as in `TextToVideoOptions`. */
type PassedOn =
  'prompt' | 'negativePrompt' | 'guidanceScale' | 'guidanceRescale' | 'numInferenceSteps' | 'seed';

export interface RefineOptions extends Pick<
  TextToVideoOptions,
  PassedOn | 'fps' | 'eta' | 'decodeBatchSize'
> {
  width: number;
  height: number;
  /** The input's frame count when known in advance (for `chunks` in the events; checked at the end). */
  numFrames?: number;
  /** Frames per chunk F (default 24) and frames each shares with the one before, O in [0, F) (default 8). */
  chunk?: number;
  overlap?: number;
  /** T': SDEdit starts at the first scheduler timestep ≤ T' (default 600 of 1000). */
  strength?: number;
  blend?: RefineBlend;
}

/** Which chunk an event is about; `chunks` is null when the input's length is not known in advance. */
interface At {
  chunk: number;
  chunks: number | null;
}

export type RefineEvent =
  | (At & {
      kind: 'chunk-start';
      /** Absolute index of the chunk's first frame (its overlap included), and its length (F or fewer). */
      firstFrame: number;
      length: number;
      /** The SDEdit steps this chunk runs, the timestep it starts at, and ε of x_T' = √ᾱ x_0 + √(1 − ᾱ) ε. */
      steps: number;
      timestep: number;
      noise: HostTensor;
    })
  | (At & {
      kind: 'step';
      index: number;
      total: number;
      timestep: number;
      /** f_thr of this step (frames [0, f_thr) were taken from the previous chunk); null when not blended. */
      split: number | null;
      /** The chunk's latents after the step and the blend (the pipeline's buffer: copy to keep). */
      latents: HostTensor;
    })
  | (At & { kind: 'chunk-done'; firstFrame: number; frames: Uint8Array[]; width: number; height: number })
  | { kind: 'done'; frames: number; chunks: number; width: number; height: number };

/** Chunks of a video of n ≥ 1 frames: 1 + ⌈(n − F) / (F − O)⌉, one when n ≤ F. */
export function refineChunkCount(n: number, chunk: number, overlap: number): number {
  return n <= chunk ? 1 : 1 + Math.ceil((n - chunk) / (chunk - overlap));
}

/** The scheduler timesteps SDEdit runs from T' (those ≤ T', largest first), or a named error when none. */
export function sdeditTimesteps(scheduler: Scheduler, steps: number, strength: number): number[] {
  const train = scheduler.config.numTrainTimesteps;
  if (!(Number.isInteger(strength) && strength >= 0 && strength < train))
    throw new KinemaError(
      'REFINE_BAD_STRENGTH',
      `the refine strength T' must be an integer timestep in [0, ${train}), got ${strength}`,
    );
  scheduler.setTimesteps(steps);
  const ts = scheduler.timesteps.filter((t) => t <= strength);
  if (ts.length === 0)
    throw new KinemaError(
      'REFINE_BAD_STRENGTH',
      `refine strength T' = ${strength} leaves no denoising step: the ${steps}-step schedule's smallest ` +
        `timestep is ${Math.min(...scheduler.timesteps)} (raise T', e.g. 600, or use more steps)`,
    );
  return ts;
}

/** Checks the chunk layout and blend mode (named errors before any work). */
export function checkRefineLayout(chunk: number, overlap: number, blend: string = 'random'): void {
  if (!Number.isInteger(chunk) || chunk < 1)
    throw new KinemaError('REFINE_BAD_CHUNK', `--refine-chunk must be an integer ≥ 1, got ${chunk}`);
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= chunk)
    throw new KinemaError(
      'REFINE_OVERLAP_TOO_LARGE',
      `--refine-overlap must be an integer in [0, --refine-chunk) = [0, ${chunk}), got ${overlap}`,
    );
  if (!(REFINE_BLENDS as readonly string[]).includes(blend))
    throw new KinemaError(
      'PIPELINE_BAD_INPUT',
      `refine blend must be ${REFINE_BLENDS.join(', ')}; got ${blend}`,
    );
}

/**
 * The pipeline seen through a scheduler whose schedule stops at T': `generate` then runs only the SDEdit
 * steps (the real scheduler keeps its full schedule, so DDIM's Δt, DDPM's previous timestep and DPM-Solver's
 * step index are those of the full schedule). One view per pipeline, so its compiled programs are reused.
 */
const views = new WeakMap<object, { pipe: TextToVideoPipeline<VideoUNet>; cut: { t: number } }>();
function sdeditView<U extends VideoUNet>(
  pipe: TextToVideoPipeline<U>,
  strength: number,
): TextToVideoPipeline<U> {
  let v = views.get(pipe);
  if (!v) {
    const s = pipe.components.scheduler;
    const cut = { t: strength };
    const scheduler: Scheduler = {
      config: s.config,
      initNoiseSigma: s.initNoiseSigma,
      betas: s.betas,
      alphasCumprod: s.alphasCumprod,
      get timesteps() {
        return s.timesteps.filter((t) => t <= cut.t);
      },
      setTimesteps: (n) => s.setTimesteps(n),
      scaleModelInput: (x, t) => s.scaleModelInput(x, t),
      step: (m, t, x, o) => s.step(m, t, x, o),
      addNoise: (x, n, t) => s.addNoise(x, n, t),
    };
    v = { pipe: new TextToVideoPipeline({ ...pipe.components, scheduler }, pipe.ep), cut };
    views.set(pipe, v);
  }
  v.cut.t = strength;
  return v.pipe as unknown as TextToVideoPipeline<U>;
}

/**
 * Pulls frames one at a time with one frame of look-ahead (to know whether a chunk is the last); `close` ends
 * the input early (an upstream generator's `finally` runs when refinement stops or fails).
 */
class FrameSource {
  private readonly it: AsyncGenerator<Uint8Array>;
  private ahead: IteratorResult<Uint8Array> | null = null;
  constructor(frames: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    this.it = (async function* () {
      yield* frames;
    })();
  }
  async peek(): Promise<Uint8Array | null> {
    this.ahead ??= await this.it.next();
    return this.ahead.done ? null : this.ahead.value;
  }
  async take(n: number): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    while (out.length < n) {
      const f = await this.peek();
      if (f === null) break;
      out.push(f);
      this.ahead = null;
    }
    return out;
  }
  async close(): Promise<void> {
    await this.it.return(undefined);
  }
}

/** RGB24 frames → [n, 3, H, W] in [-1, 1], the layout `encodeVideo` takes. */
function toPlanar(frames: Uint8Array[], width: number, height: number): HostTensor {
  const hw = width * height;
  const out = new Float32Array(frames.length * 3 * hw);
  frames.forEach((rgb, f) => {
    if (rgb.length !== hw * 3)
      throw new KinemaError(
        'PIPELINE_BAD_INPUT',
        `refine: a frame has ${rgb.length} bytes, ${width}×${height} RGB24 needs ${hw * 3}`,
      );
    for (let c = 0; c < 3; c++) {
      const plane = (f * 3 + c) * hw;
      for (let k = 0; k < hw; k++) out[plane + k] = rgb[k * 3 + c]! / 127.5 - 1;
    }
  });
  return hostTensor(out, [frames.length, 3, height, width]);
}

/** What chunk k − 1 leaves for chunk k: its last O frames' x_0 latents and noise, and their latents per step. */
interface OverlapRecord {
  x0: Float32Array;
  noise: Float32Array;
  steps: Float32Array[];
}

/** Refines a video (RGB24 frames, pulled as needed) chunk by chunk; yields each chunk's final frames at once. */
export async function* refineVideo<U extends VideoUNet>(
  pipe: TextToVideoPipeline<U>,
  frames: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  o: RefineOptions,
): AsyncGenerator<RefineEvent> {
  const F = o.chunk ?? REFINE_DEFAULTS.chunk;
  const O = o.overlap ?? REFINE_DEFAULTS.overlap;
  const blend = o.blend ?? REFINE_DEFAULTS.blend;
  const strength = o.strength ?? REFINE_DEFAULTS.strength;
  checkRefineLayout(F, O, blend);
  const { unet, vae, scheduler } = pipe.components;
  const timesteps = sdeditTimesteps(scheduler, o.numInferenceSteps ?? 25, strength);
  const factor = vae.scaleFactor;
  if (o.width % factor !== 0 || o.height % factor !== 0)
    throw new KinemaError(
      'GENERATE_BAD_SIZE',
      `refine: ${o.width}×${o.height} frames are not multiples of the refiner's VAE factor ${factor}`,
    );
  const view = sdeditView(pipe, strength);
  const C = unet.config.inChannels;
  const [h, w] = [o.height / factor, o.width / factor];
  const hw = h * w;
  const chunks = o.numFrames !== undefined ? refineChunkCount(o.numFrames, F, O) : null;
  // Two streams per video: the SDEdit noise and the splits, so every blend row starts from the same noise
  // (the split stream's key has bit 63 set, which no number seed has, so it is no other seed's noise).
  const noiseGen = new Generator(o.seed ?? 0);
  const splitGen = new Generator(BigInt(o.seed ?? 0) | (1n << 63n));
  const temporal = vae.config.temporalDecoder === true;
  const source = new FrameSource(frames);
  let prev: OverlapRecord | null = null;
  let [k, start, written] = [0, 0, 0];
  try {
    for (;;) {
      const fresh = await source.take(prev ? F - O : F);
      if (fresh.length === 0)
        throw new KinemaError('REFINE_EMPTY_VIDEO', 'refine: the input video has no frames');
      const last = (await source.peek()) === null;
      const len: number = fresh.length + (prev ? O : 0);
      const shape: LatentShape = { channels: C, frames: len, height: h, width: w };
      const latentShape = [1, C, len, h, w];
      const x0New = (await pipe.encodeVideo(toPlanar(fresh, o.width, o.height))).data as Float32Array;
      const newNoise = noiseGen.normal(x0New.length);
      let x0 = x0New;
      let noise = newNoise;
      if (prev) {
        x0 = concatFrames([prev.x0, x0New], C, hw);
        const overlapNoise = blend === 'independent' ? noiseGen.normal(prev.noise.length) : prev.noise;
        noise = concatFrames([overlapNoise, newNoise], C, hw);
      }
      const t0 = timesteps[0]!;
      const at: At = { chunk: k, chunks };
      const steps = timesteps.length;
      yield {
        kind: 'chunk-start',
        ...at,
        firstFrame: start,
        length: len,
        steps,
        timestep: t0,
        noise: hostTensor(noise, latentShape),
      };
      const chunkOpts: TextToVideoOptions = {
        ...o,
        numFrames: len,
        latents: hostTensor(scheduler.addNoise(x0, noise, [t0]), latentShape),
        seed: (o.seed ?? 0) + 1 + k, // the step noise of stochastic samplers (η > 0), different per chunk
      };
      const overlapShape: LatentShape = { ...shape, frames: O };
      const stepOverlaps: Float32Array[] = [];
      let final: Float32Array | null = null;
      for await (const e of view.generate(chunkOpts)) {
        if (e.kind !== 'step') continue;
        // The pipeline continues from the step event's latents, so the blend written here steers the next step.
        const x = e.latents.data as Float32Array;
        let split: number | null = null;
        if (blend === 'random' && prev && O > 0) {
          split = Math.floor(splitGen.uniform(1)[0]! * O); // uniform in [0, 1 − 2^-24]: split ≤ O − 1
          if (split > 0) setFrames(x, shape, 0, sliceFrames(prev.steps[e.index]!, overlapShape, 0, split));
        }
        if (!last && O > 0) stepOverlaps.push(sliceFrames(x, shape, len - O, O));
        yield {
          kind: 'step',
          ...at,
          index: e.index,
          total: e.total,
          timestep: e.timestep,
          split,
          latents: e.latents,
        };
        if (e.index === e.total - 1) {
          final = x.slice();
          break; // final: decode only the frames this chunk writes, not the whole chunk
        }
      }
      if (!final)
        throw new KinemaError(
          'PIPELINE_BAD_INPUT',
          `refine chunk ${k}: the denoising loop ended without a step`,
        );
      const count = last ? len : len - O;
      const video = await pipe.decodeLatents(
        hostTensor(sliceFrames(final, shape, 0, count), [1, C, count, h, w]),
        temporal ? undefined : o.decodeBatchSize,
      );
      const { frames: done, width, height } = postprocess(video);
      yield { kind: 'chunk-done', ...at, firstFrame: start, frames: done, width, height };
      written += done.length;
      if (last) break;
      prev = {
        x0: sliceFrames(x0, shape, len - O, O),
        noise: sliceFrames(noise, shape, len - O, O),
        steps: stepOverlaps,
      };
      start += len - O;
      k++;
    }
  } finally {
    await source.close(); // stops the input early when refinement stops or fails
  }
  if (o.numFrames !== undefined && written !== o.numFrames)
    throw new KinemaError(
      'PIPELINE_BAD_INPUT',
      `refine: numFrames is ${o.numFrames} but the input had ${written} frames`,
    );
  yield { kind: 'done', frames: written, chunks: k + 1, width: o.width, height: o.height };
}
