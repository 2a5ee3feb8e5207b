// `npm run eval:i2v`: image-to-video on the default model, every row in the same run with the same held-out
// world samples and seeds. The input image is the sample's own first frame, the prompt its caption. Rows: text
// only (no image), the image adapter (VideoCrafter1's method), the adapter + first-frame latent replacement,
// replacement alone (image scale 0). Metrics:
//   frame-0 MAD: mean absolute difference (0–255 levels) of the generated first frame to the image;
//   first-frame object match: per prompted object, the oracle finds it in both the image and frame 0 with the
//     same voted shape and its centroid within 4 px (at 64×64) — colour, shape and position;
//   the oracle's motion accuracy over the whole video (does the motion then follow the prompt);
//   PSNR of frame 0 to the image; MAWE; seconds per video.
//
//   npm run eval:i2v -- [--samples 30] [--steps 15]
import { resolve } from 'node:path';
import { Command } from 'commander';
import { intOption } from '../src/cli/options.js';
import { TextToVideoPipeline } from '../src/pipelines/text_to_video.js';
import type { PipelineEvent } from '../src/pipelines/text_to_video.js';
import { ImageAdapterBundle } from '../src/pipelines/image_to_video.js';
import type { FirstFrameMode } from '../src/pipelines/image_to_video.js';
import { analyzeMotion } from '../src/metrics/index.js';
import { scoreVideo } from '../src/training/data/oracle.js';
import { worldSample } from '../src/training/data/world.js';

const MODEL = resolve('models/default');
const [W, H, F] = [64, 64, 16];

function psnr(a: Uint8Array, b: Uint8Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  const mse = se / a.length;
  return mse === 0 ? 99 : 10 * Math.log10((255 * 255) / mse);
}

type Seen = { found: boolean; shape: string; x: number; y: number };

/** The oracle's reading of each prompted object in one frame. */
function objectsIn(frame: Uint8Array, prompt: string): Seen[] {
  const details = scoreVideo([frame], W, H, prompt).details['objects'] as Array<Record<string, unknown>>;
  return (details ?? []).map((d) => {
    const start = d['start'] as { x: number; y: number } | null;
    return {
      found: (d['presence'] as number) >= 0.6,
      shape: String(d['shape']),
      x: start?.x ?? NaN,
      y: start?.y ?? NaN,
    };
  });
}

/** Share of prompted objects matched in colour (found), shape and position (≤ 4 px) between two frames. */
function objectMatch(image: Uint8Array, frame: Uint8Array, prompt: string): number | null {
  const [a, b] = [objectsIn(image, prompt), objectsIn(frame, prompt)];
  if (a.length === 0) return null;
  const ok = a.filter((o, i) => {
    const p = b[i];
    return o.found && p?.found && o.shape === p.shape && Math.hypot(o.x - p.x, o.y - p.y) <= 4;
  });
  return ok.length / a.length;
}

function mad(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

async function framesOf(events: AsyncGenerator<PipelineEvent>): Promise<Uint8Array[]> {
  for await (const e of events) if (e.kind === 'done') return e.frames;
  throw new Error('no frames');
}

async function main(): Promise<void> {
  const o = new Command()
    .option('--samples <n>', 'held-out world samples', intOption('--samples', 1), 30)
    .option('--steps <n>', 'denoising steps', intOption('--steps', 1), 15)
    .parse()
    .opts<{ samples: number; steps: number }>();
  const pipe = await TextToVideoPipeline.fromPretrained(MODEL);
  const bundle = await ImageAdapterBundle.load(MODEL, pipe.components.unet);
  type Row = { label: string; image: boolean; scale: number; firstFrame: FirstFrameMode };
  const rows: Row[] = [
    { label: 'text only (no image)', image: false, scale: 0, firstFrame: 'none' },
    { label: 'image adapter', image: true, scale: 1, firstFrame: 'none' },
    { label: 'image adapter + first-frame replacement', image: true, scale: 1, firstFrame: 'replace' },
    { label: 'first-frame replacement alone', image: true, scale: 0, firstFrame: 'replace' },
  ];
  const acc = rows.map(() => ({
    first: [] as number[],
    mad: [] as number[],
    match: [] as number[],
    colour: [] as number[],
    shape: [] as number[],
    motion: [] as number[],
    mawe: [] as number[],
    seconds: 0,
  }));
  for (let i = 0; i < o.samples; i++) {
    const s = worldSample(7, i, { width: W, height: H, frames: F, split: 'heldout' });
    const opts = {
      prompt: s.caption,
      numFrames: F,
      width: W,
      height: H,
      numInferenceSteps: o.steps,
      seed: 100 + i,
      fps: 8,
    };
    for (const [ri, row] of rows.entries()) {
      const t0 = performance.now();
      const frames = await framesOf(
        row.image
          ? bundle.generate(pipe, {
              ...opts,
              image: s.frames[0]!,
              imageScale: row.scale,
              firstFrame: row.firstFrame,
            })
          : pipe.generate(opts),
      );
      const a = acc[ri]!;
      a.seconds += (performance.now() - t0) / 1000;
      a.first.push(psnr(frames[0]!, s.frames[0]!));
      a.mad.push(mad(frames[0]!, s.frames[0]!));
      const m0 = objectMatch(s.frames[0]!, frames[0]!, s.caption);
      if (m0 !== null) a.match.push(m0);
      const score = scoreVideo(frames, W, H, s.caption);
      if (score.colour !== null) a.colour.push(Number(score.colour));
      if (score.shape !== null) a.shape.push(Number(score.shape));
      if (score.motion !== null) a.motion.push(Number(score.motion));
      const m = (await analyzeMotion(frames, W, H, { size: null })).mawe;
      if (m !== null) a.mawe.push(m);
    }
    process.stderr.write(`sample ${i + 1}/${o.samples}: "${s.caption}"\n`);
  }
  const mean = (xs: number[]) => (xs.length ? xs.reduce((x, y) => x + y, 0) / xs.length : NaN);
  const pct = (xs: number[]) => (xs.length ? `${Math.round(100 * mean(xs))} % (${xs.length})` : '–');
  const out = [
    `Image-to-video on models/default: ${o.samples} held-out world samples (seed 7), image = the sample's first frame, ${F} frames ${W}×${H}, ${o.steps} DDIM steps, guidance 9, seeds 100…`,
    '',
    '| row | frame-0 MAD vs image ↓ | first-frame object match ↑ | frame-0 PSNR (dB) ↑ | oracle colour | oracle shape | oracle motion | MAWE ↓ | s/video |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r, i) => {
      const a = acc[i]!;
      return `| ${r.label} | ${mean(a.mad).toFixed(1)} | ${pct(a.match)} | ${mean(a.first).toFixed(2)} | ${pct(a.colour)} | ${pct(a.shape)} | ${pct(a.motion)} | ${mean(a.mawe).toFixed(2)} | ${(a.seconds / o.samples).toFixed(2)} |`;
    }),
  ];
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
