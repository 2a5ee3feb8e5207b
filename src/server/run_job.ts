// Runs one job's pipeline: the same TextToVideoPipeline and async-generator events as `kinema generate`, plus
// what a service needs around it: a cancel check after every step, a small preview (the middle frame of the
// current latents, decoded by the VAE) every few steps, and the video written to a temp name and renamed, so a
// reader never sees half a file. Used by the in-process runner and by `kinema worker` alike.
import { join } from 'node:path';
import sharp from 'sharp';
import { hostTensor } from '../engine/runtime.js';
import type { HostTensor } from '../engine/runtime.js';
import { postprocess } from '../pipelines/text_to_video.js';
import type { TextToVideoPipeline } from '../pipelines/text_to_video.js';
import { loadScheduler } from '../schedulers/index.js';
import { writeVideo } from '../io/video/index.js';
import { KinemaError } from '../errors.js';
import { pipelineOptions } from './job_params.js';
import type { JobParams } from './job_params.js';

export interface StepProgress {
  step: number;
  total: number;
  /** data:image/png;base64,… of the middle frame, on preview steps only. */
  preview?: string;
}

export interface RunJobOptions {
  pipe: TextToVideoPipeline;
  modelDir: string;
  params: JobParams;
  outputPath: string;
  /** Checked after every step; when true the run stops with a SERVER_CANCELLED error. */
  isCancelled: () => boolean;
  onStep: (p: StepProgress) => void | Promise<void>;
  /** A preview every this many steps (and at the last step); 0: none. */
  previewEvery: number;
}

export class JobCancelledError extends KinemaError {
  constructor(id: string) {
    super('SERVER_CANCELLED', `job ${id} was cancelled`);
    this.name = 'JobCancelledError';
  }
}

/** The middle frame of latents [1, C, F, h, w], decoded: a PNG data URL (a few kB for the default model). */
export async function previewImage(pipe: TextToVideoPipeline, latents: HostTensor): Promise<string> {
  const [, c, f, h, w] = latents.shape as [number, number, number, number, number];
  const mid = Math.floor(f / 2);
  const src = latents.data as Float32Array;
  const one = new Float32Array(c * h * w);
  for (let ci = 0; ci < c; ci++)
    one.set(src.subarray((ci * f + mid) * h * w, (ci * f + mid + 1) * h * w), ci * h * w);
  const video = await pipe.decodeLatents(hostTensor(one, [1, c, 1, h, w]));
  const { frames, width, height } = postprocess(video);
  const png = await sharp(Buffer.from(frames[0]!), { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}

/** Runs the job to its file; throws JobCancelledError when cancelled (nothing is left at outputPath then). */
export async function runJob(id: string, o: RunJobOptions): Promise<void> {
  const { pipe, params } = o;
  // A fresh scheduler per job: its timesteps are state, and the job may name another sampler than the folder's.
  pipe.components.scheduler = await loadScheduler(
    join(o.modelDir, 'scheduler'),
    params.scheduler ?? undefined,
  );
  for await (const e of pipe.generate(pipelineOptions(params))) {
    if (e.kind === 'step') {
      if (o.isCancelled()) throw new JobCancelledError(id);
      const step = e.index + 1;
      const wantPreview = o.previewEvery > 0 && (step % o.previewEvery === 0 || step === e.total);
      const progress: StepProgress = { step, total: e.total };
      if (wantPreview) progress.preview = await previewImage(pipe, e.latents);
      await o.onStep(progress);
    }
    if (e.kind === 'done') {
      if (o.isCancelled()) throw new JobCancelledError(id);
      await writeVideo(o.outputPath, e.frames, {
        width: e.width,
        height: e.height,
        fps: params.fps,
        format: params.format,
      });
    }
  }
}
