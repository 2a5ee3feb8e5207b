// `kinema generate --long …`: runs the chunked long-video generator and streams each finished chunk's frames
// into the video writer (a temp file renamed into place at the end; removed on any failure), with one
// progress bar per chunk that also shows the ETA of the whole video.
import { createVideoWriter } from '../io/video/index.js';
import type { VideoFormat } from '../io/video/index.js';
import { generateLongVideo } from '../pipelines/long_video/chunked.js';
import type { TextToVideoOptions, TextToVideoPipeline } from '../pipelines/text_to_video.js';
import { Progress, formatDuration } from './progress.js';
import type { ProgressOptions } from './progress.js';
import type { LongVideoRequest } from './long_video_options.js';

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

/** Generates the long video and writes it chunk by chunk; returns the number of frames written. */
export async function writeLongVideo(
  pipe: TextToVideoPipeline,
  opts: TextToVideoOptions,
  req: LongVideoRequest,
  out: LongOutput,
): Promise<number> {
  const writer = await createVideoWriter(out.path, {
    width: opts.width!,
    height: opts.height!,
    fps: out.fps,
    format: out.format,
  });
  const steps = opts.numInferenceSteps ?? 25;
  const video = { start: performance.now(), stepsBefore: 0, stepsTotal: steps * req.plan.chunks };
  let bar: ChunkProgress | null = null;
  let frames = 0;
  try {
    const { latents: _ignored, ...rest } = opts;
    const long = { ...rest, numFrames: req.plan.numFrames, chunk: req.chunk, overlap: req.overlap };
    for await (const e of generateLongVideo(pipe, long, req.mode)) {
      if (e.kind === 'chunk-start') {
        video.stepsBefore = e.chunk * steps;
        bar = new ChunkProgress(
          { label: `chunk ${e.chunk + 1}/${e.chunks}`, total: e.steps, unit: 'steps' },
          video,
        );
      } else if (e.kind === 'step') bar?.update(e.index + 1);
      else if (e.kind === 'chunk-done') {
        for (const f of e.frames) await writer.write(f);
        frames += e.frames.length;
        bar?.finish(`→ frames ${e.firstFrame}–${e.firstFrame + e.frames.length - 1} written`);
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
