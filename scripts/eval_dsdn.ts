// `npm run eval:dsdn`: the DSDN ablation on the world, every row in the same run with the same held-out prompts
// and seeds — CLIP frame consistency and CLIP text alignment (with a CLIPModel folder, --clip), MAWE (motion-
// aware warp error, lower is better), scene cuts, the oracle's colour / shape / motion accuracy, and seconds
// per video (compilation excluded). Rows: the base single-stream model (the DSDN folder's own unet/, i.e. models/default's), the dual
// stream, the dual stream without interaction, the dual stream with λ_m = 0 (the motion increment unit off).
//
//   npm run eval:dsdn -- [--model models/dsdn] [--prompts 12] [--steps 25] [--clip runs/clip/clip_model] [--gamma 0.8]
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command } from 'commander';
import { intOption, numberOption } from '../src/cli/options.js';
import { DualStreamPipeline } from '../src/pipelines/dual_stream.js';
import type { DualStreamOptions } from '../src/pipelines/dual_stream.js';
import type { PipelineEvent } from '../src/pipelines/text_to_video.js';
import { loadClipEmbedder } from '../src/models/clip/embedder.js';
import { analyzeMotion, clipScore, detectSceneCuts, frameConsistency } from '../src/metrics/index.js';
import type { ClipEmbedder } from '../src/metrics/index.js';
import { scoreVideo } from '../src/training/data/oracle.js';
import { worldSample } from '../src/training/data/world.js';

const [W, H, F] = [64, 64, 16];

interface Row {
  label: string;
  run: (o: DualStreamOptions) => AsyncGenerator<PipelineEvent>;
  consistency: number[];
  alignment: number[];
  mawe: number[];
  cuts: number[];
  colour: number[];
  shape: number[];
  motion: number[];
  seconds: number;
}

const mean = (xs: number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const f = (x: number | null, d: number): string => (x === null ? '–' : x.toFixed(d));
const pct = (xs: number[]): string => (xs.length ? `${Math.round(100 * mean(xs)!)} % (${xs.length})` : '–');

async function main(): Promise<void> {
  const o = new Command()
    .option('--model <dir>', 'DSDN pipeline folder', 'models/dsdn')
    .option('--prompts <n>', 'held-out prompts', intOption('--prompts', 1), 12)
    .option('--steps <n>', 'denoising steps', intOption('--steps', 1), 25)
    .option('--guidance <s>', 'guidance scale', numberOption('--guidance'), 9)
    .option('--gamma <g>', "motion combiner γ (default: the model's config)", numberOption('--gamma'))
    .option('--clip <dir>', 'CLIPModel folder for the CLIP scores', 'runs/clip/clip_model')
    .parse()
    .opts<{
      model: string;
      prompts: number;
      steps: number;
      guidance: number;
      gamma?: number;
      clip: string;
    }>();
  const pipe = await DualStreamPipeline.fromPretrained(resolve(o.model));
  const clip: ClipEmbedder | null = existsSync(o.clip) ? await loadClipEmbedder(o.clip) : null;
  if (!clip) process.stderr.write(`no CLIPModel at ${o.clip}: CLIP columns are left empty\n`);
  const samples = Array.from({ length: o.prompts }, (_, i) =>
    worldSample(7, i, { width: W, height: H, frames: F, split: 'heldout' }),
  );
  const gamma = o.gamma !== undefined ? { combinerGamma: o.gamma } : {};
  const row = (label: string, run: Row['run']): Row => ({
    label,
    run,
    consistency: [],
    alignment: [],
    mawe: [],
    cuts: [],
    colour: [],
    shape: [],
    motion: [],
    seconds: 0,
  });
  const rows = [
    row('base (single stream)', (x) => pipe.base.generate(x)),
    row('dual stream', (x) => pipe.generate({ ...x, ...gamma })),
    row('dual stream, no interaction', (x) => pipe.generate({ ...x, ...gamma, interaction: false })),
    row('dual stream, λ_m = 0', (x) => pipe.generate({ ...x, ...gamma, motionScale: 0 })),
  ];
  for (const r of rows) {
    // one 1-step run first, so that program compilation is not timed
    const warm = { prompt: samples[0]!.caption, numFrames: F, width: W, height: H, numInferenceSteps: 1 };
    for await (const e of r.run(warm)) void e;
    for (const [i, s] of samples.entries()) {
      const t0 = performance.now();
      let frames: Uint8Array[] = [];
      const opts = { prompt: s.caption, numFrames: F, width: W, height: H, numInferenceSteps: o.steps };
      for await (const e of r.run({ ...opts, guidanceScale: o.guidance, seed: 100 + i }))
        if (e.kind === 'done') frames = e.frames;
      r.seconds += (performance.now() - t0) / 1000;
      const video = { frames, width: W, height: H };
      if (clip) {
        r.consistency.push(await frameConsistency(video, clip));
        r.alignment.push(await clipScore(video, s.caption, clip));
      }
      const m = (await analyzeMotion(frames, W, H, { size: null })).mawe;
      if (m !== null) r.mawe.push(m);
      r.cuts.push((await detectSceneCuts(frames, W, H)).cuts.length > 0 ? 1 : 0);
      const score = scoreVideo(frames, W, H, s.caption);
      if (score.colour !== null) r.colour.push(Number(score.colour));
      if (score.shape !== null) r.shape.push(Number(score.shape));
      if (score.motion !== null) r.motion.push(Number(score.motion));
    }
    process.stderr.write(`${r.label}: ${r.seconds.toFixed(0)} s\n`);
  }
  const base = rows[0]!.seconds;
  console.log(
    `\nDSDN ablation: ${o.model}, ${o.prompts} held-out prompts (world seed 7), ${F} frames ${W}×${H}, ` +
      `${o.steps} DDIM steps, guidance ${o.guidance}, seeds 100…; CLIP model ${clip ? o.clip : 'none'}\n`,
  );
  console.log(
    '| row | CLIP frame consistency | CLIP text alignment | MAWE ↓ | videos with a scene cut | oracle colour | oracle shape | oracle motion | s/video | time vs base |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows)
    console.log(
      `| ${r.label} | ${f(mean(r.consistency), 4)} | ${f(mean(r.alignment), 4)} | ${f(mean(r.mawe), 2)} | ` +
        `${pct(r.cuts)} | ${pct(r.colour)} | ${pct(r.shape)} | ${pct(r.motion)} | ${(r.seconds / o.prompts).toFixed(2)} | ` +
        `${(r.seconds / base).toFixed(2)}× |`,
    );
}

await main();
