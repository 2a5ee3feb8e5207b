// `npm run eval:lora -- --lora FILE`: what a LoRA changes on the default model, every row in the same run
// with the same prompts and seeds (captions of the world's held-out split): the oracle's colour / shape /
// motion accuracy, and the patterned-background rate — the share of videos whose middle frame has ≥ 4 sharp
// colour edges (RGB distance > 60 between neighbours) along its median row or median column, which the
// world's stripes and checkerboards have (period 12–24 px on 64 px) and solid or gradient backgrounds do not
// (an object crosses a row or column in at most 2 edges). Rows: base, the LoRA at each --scales value.
//
//   npm run eval:lora -- --lora models/default/lora/striped.safetensors [--prompts 24] [--steps 25] [--scales 0.5,1]
import { resolve } from 'node:path';
import { Command } from 'commander';
import { intOption } from '../src/cli/options.js';
import { TextToVideoPipeline } from '../src/pipelines/text_to_video.js';
import { loadLoRAs } from '../src/pipelines/lora.js';
import { scoreVideo } from '../src/training/data/oracle.js';
import { worldSample } from '../src/training/data/world.js';
import type { Background } from '../src/training/data/world.js';

const MODEL = resolve('models/default');
const [W, H, F] = [64, 64, 16];

/** Sharp colour edges along a row (dx) or column (dy) of an RGB24 frame. */
function edges(rgb: Uint8Array, fixed: number, alongX: boolean): number {
  let n = 0;
  const px = (i: number): number => (alongX ? fixed * W + i : i * W + fixed) * 3;
  for (let i = 0; i + 1 < (alongX ? W : H); i++) {
    const a = px(i);
    const b = px(i + 1);
    const d = Math.hypot(rgb[a]! - rgb[b]!, rgb[a + 1]! - rgb[b + 1]!, rgb[a + 2]! - rgb[b + 2]!);
    if (d > 60) n++;
  }
  return n;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Whether a frame shows a patterned (striped or checkered) background. */
export function patterned(rgb: Uint8Array): boolean {
  const rows = Array.from({ length: H }, (_, y) => edges(rgb, y, true));
  const cols = Array.from({ length: W }, (_, x) => edges(rgb, x, false));
  return Math.max(median(rows), median(cols)) >= 4;
}

interface RowResult {
  label: string;
  colour: number[];
  shape: number[];
  motion: number[];
  patternedPlain: number[];
  patternedAll: number[];
  seconds: number;
}

const rate = (xs: number[]): string =>
  xs.length === 0 ? '–' : `${Math.round((100 * xs.reduce((a, b) => a + b, 0)) / xs.length)} % (${xs.length})`;

async function main(): Promise<void> {
  const o = new Command()
    .requiredOption('--lora <file>', 'LoRA file')
    .option('--prompts <n>', 'held-out prompts', intOption('--prompts', 1), 24)
    .option('--steps <n>', 'denoising steps', intOption('--steps', 1), 25)
    .option('--scales <list>', 'LoRA scales to measure', '0.5,1')
    .parse()
    .opts<{ lora: string; prompts: number; steps: number; scales: string }>();
  const scales = o.scales.split(',').map(Number);
  const samples = Array.from({ length: o.prompts }, (_, i) =>
    worldSample(7, i, { width: W, height: H, frames: F, split: 'heldout' }),
  );
  const plain = (b: Background): boolean => b.kind === 'solid' || b.kind === 'gradient';
  const rows: RowResult[] = [];
  for (const scale of [0, ...scales]) {
    const pipe = await TextToVideoPipeline.fromPretrained(MODEL);
    if (scale !== 0) loadLoRAs(pipe, [{ path: o.lora, scale }]);
    const r: RowResult = {
      label: scale === 0 ? 'base' : `LoRA × ${scale}`,
      colour: [],
      shape: [],
      motion: [],
      patternedPlain: [],
      patternedAll: [],
      seconds: 0,
    };
    const t0 = performance.now();
    for (const [i, s] of samples.entries()) {
      let frames: Uint8Array[] = [];
      for await (const e of pipe.generate({
        prompt: s.caption,
        numFrames: F,
        height: H,
        width: W,
        numInferenceSteps: o.steps,
        seed: 100 + i,
      }))
        if (e.kind === 'done') frames = e.frames;
      const score = scoreVideo(frames, W, H, s.caption);
      if (score.colour !== null) r.colour.push(Number(score.colour));
      if (score.shape !== null) r.shape.push(Number(score.shape));
      if (score.motion !== null) r.motion.push(Number(score.motion));
      const p = Number(patterned(frames[F / 2]!));
      r.patternedAll.push(p);
      if (plain(s.scene.background)) r.patternedPlain.push(p);
    }
    r.seconds = (performance.now() - t0) / 1000;
    rows.push(r);
    process.stderr.write(`${r.label}: done in ${r.seconds.toFixed(0)} s\n`);
  }
  console.log(
    `\nLoRA ${o.lora} on models/default, ${o.prompts} held-out prompts (world seed 7), ${o.steps} DDIM steps, seeds 100…\n`,
  );
  console.log(
    '| row | patterned bg, prompts naming solid/gradient | patterned bg, all prompts | oracle colour | oracle shape | oracle motion | s/video |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows)
    console.log(
      `| ${r.label} | ${rate(r.patternedPlain)} | ${rate(r.patternedAll)} | ${rate(r.colour)} | ${rate(r.shape)} | ${rate(r.motion)} | ${(r.seconds / o.prompts).toFixed(2)} |`,
    );
  // The detector itself, on the world's own renders (ground truth known).
  let hit = 0;
  let n = 0;
  for (let i = 0; i < 200; i++) {
    const s = worldSample(7, 10_000 + i, { width: W, height: H, frames: F, split: 'heldout' });
    hit += Number(patterned(s.frames[F / 2]!) === !plain(s.scene.background));
    n++;
  }
  console.log(
    `\npatterned-background detector on 200 world renders: ${Math.round((100 * hit) / n)} % agree with the scene`,
  );
}

await main();
