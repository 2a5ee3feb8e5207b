// `npm run eval:long`: StreamingT2V's ablations on the default model and its shipped adapters, every row of a
// table in the same run with the same prompts and seeds (held-out world captions):
//   1. naive continuation vs CAM vs CAM + APM on long videos: SCuts (AdaptiveDetector) and MAWE (Farnebäck at
//      the native 64×64, not the paper's 720×720 resize, to fit the time budget);
//   2. appearance drift with and without the APM: the share of prompted objects whose colour the oracle finds in
//      the first chunk (16 frames) but no longer in the last, and the share whose identity (colour found, voted
//      shape) changes from the first chunk to the last;
//   3. the enhancer's blending ablation: `npm run eval:refine` (run here as a child, its table printed as is);
//   4. memory: peak RSS of `--long streaming` at 48, 240 and 1200 frames (a child process each, few steps).
//
//   npm run eval:long -- [--prompts 2] [--frames 240] [--steps 8] [--memory 48,240,1200] [--no-refine]
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { Command } from 'commander';
import { intOption } from '../src/cli/options.js';
import { TextToVideoPipeline } from '../src/pipelines/text_to_video.js';
import { generateLongVideo } from '../src/pipelines/long_video/chunked.js';
import type { LongVideoMode } from '../src/pipelines/long_video/chunked.js';
import { naiveMode } from '../src/pipelines/long_video/naive.js';
import { StreamingAdaptersBundle } from '../src/pipelines/streaming_t2v.js';
import { analyzeMotion, detectSceneCuts } from '../src/metrics/index.js';
import { scoreVideo } from '../src/training/data/oracle.js';
import { worldSample } from '../src/training/data/world.js';
import { writeJsonAtomic } from '../src/training/export.js';

const MODEL = resolve('models/default');
const [W, H, CHUNK, OVERLAP] = [64, 64, 16, 8];

interface Scores {
  scuts: number;
  mawe: number | null;
  colourLost: number;
  identityDrift: number;
  seconds: number;
}

/** Per prompted object: [is the prompt's colour found, voted shape]. */
function identities(frames: Uint8Array[], prompt: string): Array<{ found: boolean; shape: string }> {
  const s = scoreVideo(frames, W, H, prompt);
  const objects = (s.details['objects'] as Array<Record<string, unknown>>) ?? [];
  return objects.map((o) => ({ found: (o['presence'] as number) >= 0.6, shape: String(o['shape']) }));
}

async function score(frames: Uint8Array[], prompt: string, seconds: number): Promise<Scores> {
  const cuts = await detectSceneCuts(frames, W, H);
  const motion = await analyzeMotion(frames, W, H, { size: null });
  const first = identities(frames.slice(0, CHUNK), prompt);
  const last = identities(frames.slice(-CHUNK), prompt);
  const n = Math.max(first.length, 1);
  return {
    scuts: cuts.cuts.length,
    mawe: motion.mawe,
    colourLost: first.filter((o, i) => o.found && !last[i]?.found).length / n,
    identityDrift:
      first.filter((o, i) => o.found !== last[i]?.found || o.shape !== last[i]?.shape).length / n,
    seconds,
  };
}

/** Child mode: one `--long streaming` video of `frames` frames, frames dropped as they come; prints peak RSS. */
async function rssChild(frames: number, steps: number): Promise<void> {
  const pipe = await TextToVideoPipeline.fromPretrained(MODEL);
  const bundle = await StreamingAdaptersBundle.load(MODEL, pipe.components.unet);
  const o = { prompt: 'a yellow square moves right on a purple background', numFrames: frames, chunk: CHUNK };
  let written = 0;
  const long = { ...o, overlap: OVERLAP, height: H, width: W, numInferenceSteps: steps, fps: 8 };
  for await (const e of generateLongVideo(pipe, long, bundle.mode(pipe)))
    if (e.kind === 'chunk-done') written += e.frames.length;
  process.stdout.write(
    JSON.stringify({ frames: written, maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n',
  );
}

async function main(): Promise<void> {
  const o = new Command()
    .option('--prompts <n>', 'held-out world prompts', intOption('--prompts', 1), 2)
    .option('--frames <n>', 'video length for the ablations', intOption('--frames', 17), 240)
    .option('--steps <n>', 'denoising steps per chunk', intOption('--steps', 1), 8)
    .option('--seed <n>', 'seed of prompt i is seed + i', intOption('--seed', 0), 0)
    .option(
      '--memory <list>',
      'lengths for the peak-RSS runs (empty: skip)',
      (v) => v.split(',').filter(Boolean).map(Number),
      [48, 240, 1200],
    )
    .option('--no-refine', 'skip the enhancer table (npm run eval:refine)')
    .option(
      '--rss-child <frames>',
      'internal: run one video and print its peak RSS',
      intOption('--rss-child', 1),
    )
    .option('--json <file>', 'also write the per-video scores here', 'bench/long_eval.json')
    .parse()
    .opts<{
      prompts: number;
      frames: number;
      steps: number;
      seed: number;
      memory: number[];
      refine: boolean;
      rssChild?: number;
      json: string;
    }>();
  if (o.rssChild !== undefined) return rssChild(o.rssChild, o.steps);
  const pipe = await TextToVideoPipeline.fromPretrained(MODEL);
  const bundle = await StreamingAdaptersBundle.load(MODEL, pipe.components.unet);
  const rows: Array<{ label: string; mode: () => LongVideoMode }> = [
    { label: 'naive continuation', mode: naiveMode },
    { label: 'CAM', mode: () => bundle.mode(pipe, { apm: false }) },
    { label: 'CAM + APM', mode: () => bundle.mode(pipe) },
  ];
  const prompts = Array.from(
    { length: o.prompts },
    (_, i) => worldSample(7, i, { width: W, height: H, frames: 16, split: 'heldout' }).caption,
  );
  const results: Array<{ row: string; prompt: string; scores: Scores }> = [];
  const t0 = performance.now();
  for (const [pi, prompt] of prompts.entries())
    for (const row of rows) {
      const start = performance.now();
      const frames: Uint8Array[] = [];
      const opts = { prompt, numFrames: o.frames, chunk: CHUNK, overlap: OVERLAP, height: H, width: W };
      const run = { ...opts, numInferenceSteps: o.steps, seed: o.seed + pi, fps: 8, guidanceScale: 7.5 };
      for await (const e of generateLongVideo(pipe, run, row.mode()))
        if (e.kind === 'chunk-done') frames.push(...e.frames);
      const scores = await score(frames, prompt, (performance.now() - start) / 1000);
      results.push({ row: row.label, prompt, scores });
      const el = ((performance.now() - t0) / 1000).toFixed(0);
      process.stderr.write(`"${prompt}" · ${row.label}: ${JSON.stringify(scores)} (${el} s)\n`);
    }
  const memory: Array<{ frames: number; maxRssMiB: number; seconds: number }> = [];
  for (const n of o.memory) {
    const start = performance.now();
    const args = ['--import', 'tsx', 'scripts/eval_long.ts', '--rss-child', String(n), '--steps', '2'];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`RSS child for ${n} frames failed: ${r.stderr}`);
    const m = JSON.parse(r.stdout.trim().split('\n').pop()!) as { frames: number; maxRssMiB: number };
    memory.push({ ...m, seconds: (performance.now() - start) / 1000 });
    process.stderr.write(`memory: ${n} frames → ${m.maxRssMiB.toFixed(0)} MiB peak RSS\n`);
  }
  writeJsonAtomic(o.json, { settings: { ...o, prompts }, results, memory });
  const f = (v: number | null, d: number) => (v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(d));
  const mean = (xs: (number | null)[]) => {
    const v = xs.filter((x): x is number => x !== null);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  const of = (label: string) => results.filter((r) => r.row === label).map((r) => r.scores);
  const head = `${prompts.length} held-out prompts, ${o.frames} frames 64×64, chunk ${CHUNK}, overlap ${OVERLAP}, ${o.steps} DDIM steps, guidance 7.5, seeds ${o.seed}…`;
  const out = [
    `StreamingT2V ablations on models/default (${head})`,
    '',
    '| mode | SCuts ↓ | MAWE ↓ | s / video |',
    '| --- | --- | --- | --- |',
  ];
  for (const row of rows) {
    const rs = of(row.label);
    out.push(
      `| ${row.label} | ${f(mean(rs.map((r) => r.scuts)), 2)} | ${f(mean(rs.map((r) => r.mawe)), 2)} | ${f(mean(rs.map((r) => r.seconds)), 0)} |`,
    );
  }
  out.push(
    '',
    '| mode | prompted colour lost, first → last chunk ↓ | identity drift ↓ |',
    '| --- | --- | --- |',
  );
  for (const row of rows.slice(1)) {
    const rs = of(row.label);
    out.push(
      `| ${row.label} | ${f(mean(rs.map((r) => r.colourLost)), 2)} | ${f(mean(rs.map((r) => r.identityDrift)), 2)} |`,
    );
  }
  if (memory.length > 0) {
    out.push(
      '',
      '| frames (--long streaming, 2 steps) | peak RSS (MiB) | vs the first |',
      '| --- | --- | --- |',
    );
    for (const m of memory)
      out.push(
        `| ${m.frames} | ${m.maxRssMiB.toFixed(0)} | ${(m.maxRssMiB / memory[0]!.maxRssMiB).toFixed(2)}× |`,
      );
  }
  process.stdout.write(out.join('\n') + '\n');
  if (o.refine) {
    process.stdout.write('\nEnhancer (randomized blending) ablation, npm run eval:refine:\n\n');
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'scripts/eval_refine.ts', '--videos', String(o.prompts)],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    if (r.status !== 0) process.exitCode = 1;
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
