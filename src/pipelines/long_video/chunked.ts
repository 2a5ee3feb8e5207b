// The chunked long-video core shared by every long-video mode (naive continuation, VidRD, StreamingT2V):
// a first chunk of F frames, then chunks of F frames whose first O frames overlap the last O frames of the
// chunk before, each adding F − O new frames, until `numFrames` are out. Each chunk runs the ordinary
// text-to-video denoising loop (`TextToVideoPipeline.generate`) from starting latents the mode chooses; the
// mode may edit the latents after every step (guidance / replacement of the overlap frames) and override
// the chunk's conditioning. A chunk's new frames are decoded and yielded as soon as the chunk is final, and
// only the previous chunk is kept, so memory does not grow with the length of the video.
import { hostTensor } from '../../engine/runtime.js';
import type { HostTensor } from '../../engine/runtime.js';
import { Generator } from '../../engine/random.js';
import { KinemaError } from '../../errors.js';
import { postprocess } from '../text_to_video.js';
import type { PipelineEvent, TextToVideoOptions, TextToVideoPipeline } from '../text_to_video.js';
import { concatFrames, latentLength, sliceFrames } from './latent_frames.js';
import type { LatentShape } from './latent_frames.js';

/** The frame layout of a long video: chunk length F, overlap O, total frames N. */
export interface ChunkPlan {
  readonly numFrames: number;
  readonly chunk: number;
  readonly overlap: number;
  /** Number of chunks: 1 + ⌈(N − F) / (F − O)⌉. */
  readonly chunks: number;
}

/** What the previous chunk leaves for the next one (only the latest chunk is kept). */
export interface ChunkRecord {
  readonly index: number;
  /** The chunk's starting latents x_T [1, C, F, h, w] (after the mode's step −1 edit). */
  readonly initialNoise: Float32Array;
  /**
   * The chunk's final latents as they were written: its first O frames replaced by the latents of the frames
   * already on screen (so its last O frames are always the latents of the last O frames written).
   */
  readonly final: Float32Array;
}

/** What a mode sees when it prepares or guides a chunk. */
export interface ChunkContext {
  readonly index: number;
  readonly plan: ChunkPlan;
  readonly shape: LatentShape;
  /** The chunk before (null for the first chunk). */
  readonly previous: ChunkRecord | null;
  /** The schedule's timesteps, largest first. */
  readonly timesteps: readonly number[];
  readonly alphasCumprod: Float32Array;
  /** The mode's random stream (seeded once per video; draws happen in chunk order). */
  readonly generator: Generator;
  /** The video's first frame (RGB24), once written (null for the first chunk). */
  readonly firstFrame: Uint8Array | null;
  /** The last min(O, written) frames of the video so far (RGB24, oldest first): the CAM's conditioning. */
  readonly tail: readonly Uint8Array[];
  /** Frame size in pixels. */
  readonly width: number;
  readonly height: number;
}

/**
 * A long-video mode: how a chunk starts, how its overlap frames are steered while it is denoised, and what
 * extra conditioning it gets. StreamingT2V's CAM/APM plug in as `conditioning`; VidRD's FNR/PNS as
 * `initialLatents` and DSG as `guide`.
 */
export interface LongVideoMode {
  readonly name: string;
  /** Checks the mode's parameters against the plan and step count before any work (throws KinemaError). */
  check?(plan: ChunkPlan, steps: number): void;
  /** Starting latents x_T [1, C, F, h, w] of a chunk (a fresh array the core may keep). */
  initialLatents(c: ChunkContext): Float32Array;
  /**
   * Edits the chunk's latents in place after denoising step `step` (0-based; −1: the starting latents, before
   * the first step). After step i the latents are at noise level `levelAfter(c, i)`.
   */
  guide?(c: ChunkContext, step: number, latents: Float32Array): void;
  /** Pipeline option overrides for a chunk (extra conditioning: prompt, guidance, adapters' inputs). */
  conditioning?(c: ChunkContext): Partial<TextToVideoOptions>;
  /**
   * The chunk's denoising loop instead of `pipe.generate(o)` (StreamingT2V: the base with CAM and APM); it
   * must yield `pipe.generate`'s step events, whose latents the core may edit in place.
   */
  denoise?(c: ChunkContext, o: TextToVideoOptions): Promise<AsyncGenerator<PipelineEvent>>;
}

export interface LongVideoOptions extends Omit<TextToVideoOptions, 'numFrames' | 'latents'> {
  /** Total frames N (≥ the chunk length). */
  numFrames: number;
  /** Frames per chunk F (the model's window; default 16). */
  chunk?: number;
  /** Frames each chunk shares with the one before, O in [0, F) (default F / 2, rounded down). */
  overlap?: number;
  /**
   * The first chunk's denoising loop instead of the mode's (image-to-video: the image adapter with first-frame
   * replacement, so that a long video starts from an image); like `LongVideoMode.denoise`, it must yield
   * `pipe.generate`'s step events. Later chunks continue from it as the mode does from any first chunk.
   */
  firstChunk?: (o: TextToVideoOptions) => AsyncGenerator<PipelineEvent>;
}

export type LongVideoEvent =
  | {
      kind: 'chunk-start';
      chunk: number;
      chunks: number;
      /** Absolute index of the chunk's first frame (its overlap frames included). */
      firstFrame: number;
      /** Frames this chunk adds to the video. */
      newFrames: number;
      steps: number;
      /** The chunk's starting latents [1, C, F, h, w]. */
      latents: HostTensor;
    }
  | { kind: 'step'; chunk: number; chunks: number; index: number; total: number; latents: HostTensor }
  | {
      kind: 'chunk-done';
      chunk: number;
      chunks: number;
      /** Absolute index of the first frame in `frames`. */
      firstFrame: number;
      frames: Uint8Array[];
      /** The chunk's latents as written [1, C, F, h, w] (overlap frames = those on screen), to re-decode. */
      latents: HostTensor;
      /** Frames of `latents` before the new ones (0 for the first chunk, else O). */
      skip: number;
      width: number;
      height: number;
    }
  | { kind: 'done'; frames: number; chunks: number; width: number; height: number };

export const DEFAULT_CHUNK = 16;

/** The chunk plan of N frames, or a named error for a layout that cannot work. */
export function planChunks(
  numFrames: number,
  chunk = DEFAULT_CHUNK,
  overlap = Math.floor(chunk / 2),
): ChunkPlan {
  const int = (v: number): boolean => Number.isInteger(v);
  if (!int(chunk) || chunk < 1)
    throw new KinemaError('LONG_BAD_CHUNK', `--chunk must be an integer ≥ 1, got ${chunk}`);
  if (!int(overlap) || overlap < 0 || overlap >= chunk)
    throw new KinemaError(
      'LONG_OVERLAP_TOO_LARGE',
      `--overlap must be an integer in [0, --chunk) = [0, ${chunk}), got ${overlap}: each chunk must add new frames`,
    );
  if (!int(numFrames) || numFrames < chunk)
    throw new KinemaError(
      'LONG_TOO_FEW_FRAMES',
      `--frames ${numFrames} is shorter than the model's window (--chunk ${chunk}); a long video needs at ` +
        `least one whole chunk (use --frames ≥ ${chunk}, or a smaller --chunk)`,
    );
  const chunks = 1 + Math.ceil((numFrames - chunk) / (chunk - overlap));
  return { numFrames, chunk, overlap, chunks };
}

/** Absolute first frame of chunk k and the range of frames it adds ([from, to) in absolute frames). */
export function chunkFrames(plan: ChunkPlan, k: number): { start: number; from: number; to: number } {
  const start = k * (plan.chunk - plan.overlap);
  const from = k === 0 ? 0 : start + plan.overlap;
  return { start, from, to: Math.min(plan.numFrames, start + plan.chunk) };
}

/** Noise level (train timestep) of the latents after step i: the next timestep, or null when clean. */
export function levelAfter(c: Pick<ChunkContext, 'timesteps'>, step: number): number | null {
  if (step < 0) return c.timesteps[0] ?? null;
  return step + 1 < c.timesteps.length ? c.timesteps[step + 1]! : null;
}

/** q(x_t | x_0) = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε (x_0 itself when t is null: the clean end of the schedule). */
export function renoise(
  x0: Float32Array,
  noise: Float32Array,
  t: number | null,
  alphasCumprod: Float32Array,
): Float32Array {
  if (t === null) return x0.slice();
  const a = alphasCumprod[t]!;
  const [sa, sb] = [Math.sqrt(a), Math.sqrt(1 - a)];
  const out = new Float32Array(x0.length);
  for (let i = 0; i < x0.length; i++) out[i] = sa * x0[i]! + sb * noise[i]!;
  return out;
}

/**
 * Checks a long-video request (plan, steps, and the mode's own parameters when given) without a model: every
 * error comes before any work.
 */
export function checkLongVideo(o: LongVideoOptions, mode?: LongVideoMode): ChunkPlan {
  const plan = planChunks(o.numFrames, o.chunk, o.overlap);
  const steps = o.numInferenceSteps ?? 25;
  if (!Number.isInteger(steps) || steps < 1)
    throw new KinemaError('LONG_BAD_STEPS', `the step count must be an integer ≥ 1, got ${steps}`);
  mode?.check?.(plan, steps);
  return plan;
}

/**
 * Generates a long video chunk by chunk with `mode`, yielding progress and each chunk's new frames (RGB24)
 * as soon as the chunk is final; write them to a streaming video writer to keep memory flat.
 */
export async function* generateLongVideo(
  pipe: TextToVideoPipeline,
  o: LongVideoOptions,
  mode: LongVideoMode,
): AsyncGenerator<LongVideoEvent> {
  const plan = checkLongVideo(o, mode);
  const { unet, vae, scheduler } = pipe.components;
  const f = vae.scaleFactor;
  const [height, width] = [o.height ?? 256, o.width ?? 256];
  if (height % f !== 0 || width % f !== 0)
    throw new KinemaError(
      'LONG_BAD_SIZE',
      `height and width must be divisible by the VAE factor ${f}, got ${height}×${width}`,
    );
  const shape: LatentShape = {
    channels: unet.config.inChannels,
    frames: plan.chunk,
    height: height / f,
    width: width / f,
  };
  const steps = o.numInferenceSteps ?? 25;
  scheduler.setTimesteps(steps);
  const timesteps = [...scheduler.timesteps];
  const generator = new Generator(o.seed ?? 0);
  const hw = shape.height * shape.width;
  let previous: ChunkRecord | null = null;
  let written = 0;
  let firstFrame: Uint8Array | null = null;
  let tail: Uint8Array[] = [];
  for (let k = 0; k < plan.chunks; k++) {
    const ctx: ChunkContext = {
      index: k,
      plan,
      shape,
      previous,
      timesteps,
      alphasCumprod: scheduler.alphasCumprod,
      generator,
      firstFrame,
      tail,
      width,
      height,
    };
    const { start, from, to } = chunkFrames(plan, k);
    const initial = mode.initialLatents(ctx);
    if (initial.length !== latentLength(shape))
      throw new KinemaError(
        'PIPELINE_BAD_INPUT',
        `mode ${mode.name}: starting latents of ${initial.length} values, expected ${latentLength(shape)}`,
      );
    mode.guide?.(ctx, -1, initial);
    const latentsShape = [1, shape.channels, shape.frames, shape.height, shape.width];
    yield {
      kind: 'chunk-start',
      chunk: k,
      chunks: plan.chunks,
      firstFrame: start,
      newFrames: to - from,
      steps,
      latents: hostTensor(initial, latentsShape),
    };
    let final: Float32Array | null = null;
    const { firstChunk: _first, ...base } = o;
    const chunkOpts: TextToVideoOptions = {
      ...base,
      numFrames: plan.chunk,
      latents: hostTensor(initial.slice(), latentsShape),
      seed: (o.seed ?? 0) + 1 + k, // the step noise of stochastic samplers (η > 0), different per chunk
      ...mode.conditioning?.(ctx),
    };
    const loop =
      k === 0 && o.firstChunk
        ? o.firstChunk(chunkOpts)
        : mode.denoise
          ? await mode.denoise(ctx, chunkOpts)
          : pipe.generate(chunkOpts);
    for await (const e of loop) {
      if (e.kind !== 'step') continue;
      // The pipeline continues from the step event's latents: edits made here steer the next step.
      const x = e.latents.data as Float32Array;
      mode.guide?.(ctx, e.index, x);
      yield {
        kind: 'step',
        chunk: k,
        chunks: plan.chunks,
        index: e.index,
        total: e.total,
        latents: e.latents,
      };
      if (e.index === e.total - 1) {
        final = x.slice();
        break; // the chunk is final: the core decodes only its new frames
      }
    }
    if (!final)
      throw new KinemaError(
        'PIPELINE_BAD_INPUT',
        `chunk ${k}: the denoising loop ended without a final step`,
      );
    // The chunk as written: its overlap frames are those already on screen.
    const asWritten: Float32Array = previous
      ? concatFrames(
          [
            sliceFrames(previous.final, shape, plan.chunk - plan.overlap, plan.overlap),
            sliceFrames(final, shape, plan.overlap, plan.chunk - plan.overlap),
          ],
          shape.channels,
          hw,
        )
      : final;
    const skip = from - start;
    const frames = await decodeChunkFrames(pipe, asWritten, shape, skip, to - from, o.decodeBatchSize);
    written += frames.frames.length;
    firstFrame ??= frames.frames[0] ?? null;
    tail = [...tail, ...frames.frames].slice(-Math.max(plan.overlap, 1));
    const latents = hostTensor(asWritten, latentsShape);
    yield { kind: 'chunk-done', chunk: k, chunks: plan.chunks, firstFrame: from, ...frames, latents, skip };
    previous = { index: k, initialNoise: initial, final: asWritten };
  }
  yield { kind: 'done', frames: written, chunks: plan.chunks, width, height };
}

/**
 * Decodes frames [skip, skip + count) of a chunk's latents. The image decoder decodes only those frames; a
 * temporal decoder (VidRD) also gets the frames before them (already on screen) as context, so its
 * temporal layers see across the chunk boundary, and their outputs are dropped.
 */
export async function decodeChunkFrames(
  pipe: TextToVideoPipeline,
  chunkLatents: Float32Array,
  shape: LatentShape,
  skip: number,
  count: number,
  batchSize?: number,
): Promise<{ frames: Uint8Array[]; width: number; height: number }> {
  const temporal = pipe.components.vae.config.temporalDecoder;
  const first = temporal ? 0 : skip;
  const n = skip + count - first;
  const latents = hostTensor(sliceFrames(chunkLatents, shape, first, n), [
    1,
    shape.channels,
    n,
    shape.height,
    shape.width,
  ]);
  const video = await pipe.decodeLatents(latents, temporal ? undefined : batchSize);
  const out = postprocess(video);
  return { frames: out.frames.slice(skip - first), width: out.width, height: out.height };
}
