// `kinema generate --long … [--refine]`: runs the chunked long-video generator and streams each finished chunk's
// frames into the video writer (a temp file renamed into place at the end; removed on any failure), with one
// progress bar per chunk that also shows the ETA of the whole video. With --refine the generated frames stream
// into the refiner instead (src/pipelines/long_video/refine.ts), which pulls them as its chunks need them and
// hands each refined chunk to the writer: generation and refinement alternate chunk by chunk, so memory stays
// flat (one generation chunk, one refine chunk and its overlap) whatever the length.
import { createVideoWriter } from '../io/video/index.js';
import type { VideoFormat } from '../io/video/index.js';
import { generateLongVideo } from '../pipelines/long_video/chunked.js';
import { refineChunkCount, refineVideo, sdeditTimesteps } from '../pipelines/long_video/refine.js';
import type { TextToVideoOptions, TextToVideoPipeline } from '../pipelines/text_to_video.js';
import { Progress, formatDuration } from './progress.js';
import type { ProgressOptions } from './progress.js';
import type { LongVideoRequest } from './long_video_options.js';
import type { LongVideoMode, LongVideoOptions } from '../pipelines/long_video/chunked.js';

/** A chunk's bar, followed by the ETA of the whole video from the mean time per step so far. */
class ChunkProgress extends Progress {
  constructor(
    opts: ProgressOptions,
    private readonly video: { start: number; stepsBefore: number; stepsTotal: number },
  ) {
    super(opts);
  }

  override status(t: number = performance.now()): string {
    const done = this.video.stepsBefore + this.done;
    const elapsed = (t - this.video.start) / 1000;
    const eta = done > 0 ? (elapsed / done) * (this.video.stepsTotal - done) : NaN;
    return `${super.status(t)} · video ETA ${formatDuration(eta)}`;
  }
}

export interface LongOutput {
  readonly path: string;
  readonly format: VideoFormat;
  readonly fps: number;
}

/**
 * Generates the long video and writes it chunk by chunk (refined by `refiner`, default the generating
 * pipeline, when the request has --refine); returns the number of frames written.
 */
export async function writeLongVideo(
  pipe: TextToVideoPipeline,
  opts: TextToVideoOptions,
  req: LongVideoRequest & {
    readonly mode: LongVideoMode;
    /** --image: the first chunk's loop (the image adapter), the rest as the mode generates them. */
    readonly firstChunk?: LongVideoOptions['firstChunk'];
  },
  out: LongOutput,
  refiner: TextToVideoPipeline = pipe,
): Promise<number> {
  const steps = opts.numInferenceSteps ?? 25;
  const refine = req.refine;
  const n = req.plan.numFrames;
  // The ETA counts steps of both passes alike (a refine step runs a longer chunk: a slight underestimate).
  const sdeditSteps = refine
    ? sdeditTimesteps(refiner.components.scheduler, steps, refine.strength).length
    : 0;
  const refineSteps = refine ? sdeditSteps * refineChunkCount(n, refine.chunk, refine.overlap) : 0;
  const writer = await createVideoWriter(out.path, {
    width: opts.width!,
    height: opts.height!,
    fps: out.fps,
    format: out.format,
  });
  const video = {
    start: performance.now(),
    stepsBefore: 0,
    stepsTotal: steps * req.plan.chunks + refineSteps,
  };
  let bar = null as ChunkProgress | null; // (set in closures: no narrowing to null)
  let stepsDone = 0;
  const startBar = (label: string, total: number): void => {
    video.stepsBefore = stepsDone;
    bar = new ChunkProgress({ label, total, unit: 'steps' }, video);
  };
  const range = (first: number, count: number) => `frames ${first}–${first + count - 1}`;
  let frames = 0;
  const { latents: _ignored, ...rest } = opts;
  const long = {
    ...rest,
    numFrames: n,
    chunk: req.chunk,
    overlap: req.overlap,
    ...(req.firstChunk && { firstChunk: req.firstChunk }),
  };
  /** The generated frames, a chunk at a time; each chunk's bar is finished when its frames are handed on. */
  async function* generated(): AsyncGenerator<Uint8Array[]> {
    for await (const e of generateLongVideo(pipe, long, req.mode)) {
      if (e.kind === 'chunk-start') startBar(`chunk ${e.chunk + 1}/${e.chunks}`, e.steps);
      else if (e.kind === 'step') bar?.update(e.index + 1);
      else if (e.kind === 'chunk-done') {
        stepsDone += steps;
        // Refining pulls these frames while this generator waits: finish the bar before the refine bar starts.
        if (refine) bar?.finish(`→ ${range(e.firstFrame, e.frames.length)} generated`);
        yield e.frames;
        if (!refine) bar?.finish(`→ ${range(e.firstFrame, e.frames.length)} written`);
      }
    }
  }
  async function* generatedFrames(): AsyncGenerator<Uint8Array> {
    for await (const chunk of generated()) yield* chunk;
  }
  try {
    if (!refine)
      for await (const chunk of generated()) {
        for (const f of chunk) await writer.write(f);
        frames += chunk.length;
      }
    else {
      const o = {
        ...rest,
        width: opts.width!,
        height: opts.height!,
        numFrames: n,
        chunk: refine.chunk,
        overlap: refine.overlap,
        strength: refine.strength,
        blend: refine.blend,
      };
      for await (const e of refineVideo(refiner, generatedFrames(), o)) {
        if (e.kind === 'chunk-start') startBar(`refine ${e.chunk + 1}/${e.chunks}`, e.steps);
        else if (e.kind === 'step') bar?.update(e.index + 1);
        else if (e.kind === 'chunk-done') {
          for (const f of e.frames) await writer.write(f);
          frames += e.frames.length;
          stepsDone += sdeditSteps;
          bar?.finish(`→ refined ${range(e.firstFrame, e.frames.length)} written`);
        }
      }
    }
    await writer.close();
  } catch (err) {
    bar?.abandon();
    await writer.abort();
    throw err;
  }
  return frames;
}
