// `npm run eval:refine`: StreamingT2V's enhancement-stage ablation (§4.3 and its appendix "Randomized Blending")
// on the default model, every row in one run with the same prompts, inputs and seeds. Each input is a naive
// long video (48 frames at 64×64, chunk 16, overlap 8) of a held-out world caption; it is refined with the
// three blend modes of src/pipelines/long_video/refine.ts (24/8, T' = 600, the generating model as refiner):
// independent noise per chunk, shared noise over the overlaps, shared noise + randomized blending. The
// unrefined input is a reference row.
//
// Metrics (src/metrics, docs/metrics.md), all with Farnebäck flow at the native 64×64 (not MAWE's 720×720):
//   flow-std over the refine overlaps: the existing flow-smoothness metric (mean over pixels of the temporal
//     std of the flow magnitude, `flowSmoothness(...).smoothness` — the paper's figure) computed on the frames
//     of each refine overlap plus the frame before it (frames [16k − 1, 16k + O − 1], O pairs: every seam the
//     output can have lies among them), averaged over the overlaps; lower is smoother across the seams;
//   MAWE and SCuts over the whole video; seconds of refinement per video.
//
//   npm run eval:refine -- [--videos 2] [--steps 10] [--seed 0] [--json out.json]
import { resolve } from 'node:path';
import { Command } from 'commander';
import { intOption } from '../src/cli/options.js';
import { TextToVideoPipeline } from '../src/pipelines/text_to_video.js';
import { generateLongVideo } from '../src/pipelines/long_video/chunked.js';
import { naiveMode } from '../src/pipelines/long_video/naive.js';
import { refineChunkCount, refineVideo } from '../src/pipelines/long_video/refine.js';
import type { RefineBlend } from '../src/pipelines/long_video/refine.js';
import { analyzeMotion, detectSceneCuts, flowSmoothness } from '../src/metrics/index.js';
import { worldSample } from '../src/training/data/world.js';
import { writeJsonAtomic } from '../src/training/export.js';

const MODEL = resolve('models/default');
const [W, H, FRAMES] = [64, 64, 48];
const GEN = { chunk: 16, overlap: 8 };
const REFINE = { chunk: 24, overlap: 8, strength: 600 };
const ROWS: Array<{ label: string; blend: RefineBlend | null }> = [
  { label: 'input (naive, unrefined)', blend: null },
  { label: 'independent enhancement', blend: 'independent' },
  { label: 'shared noise', blend: 'shared-noise' },
  { label: 'shared noise + randomized blending', blend: 'random' },
];

interface Scores {
  overlapFlowStd: number | null;
  mawe: number | null;
  scuts: number;
  seconds: number;
}

/** Mean flow smoothness over the refine overlaps' windows [s − 1, s + O − 1], s = each chunk's first frame. */
async function overlapFlowStd(frames: Uint8Array[]): Promise<number | null> {
  const values: number[] = [];
  for (let k = 1; k < refineChunkCount(frames.length, REFINE.chunk, REFINE.overlap); k++) {
    const s = k * (REFINE.chunk - REFINE.overlap);
    const window = frames.slice(s - 1, Math.min(frames.length, s + REFINE.overlap));
    const r = await flowSmoothness(window, W, H, { size: null });
    if (r.smoothness !== null) values.push(r.smoothness);
  }
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
}

async function score(frames: Uint8Array[], seconds: number): Promise<Scores> {
  const motion = await analyzeMotion(frames, W, H, { size: null });
  const cuts = await detectSceneCuts(frames, W, H);
  return {
    overlapFlowStd: await overlapFlowStd(frames),
    mawe: motion.mawe,
    scuts: cuts.cuts.length,
    seconds,
  };
}

async function main(): Promise<void> {
  const o = new Command()
    .option('--videos <n>', 'held-out world prompts, one video each', intOption('--videos', 1), 2)
    .option(
      '--steps <n>',
      'DDIM steps of generation (refinement runs those ≤ T′)',
      intOption('--steps', 1),
      10,
    )
    .option('--seed <n>', 'seed of video i is seed + i', intOption('--seed', 0), 0)
    .option('--json <file>', 'also write the per-video scores here')
    .parse()
    .opts<{ videos: number; steps: number; seed: number; json?: string }>();
  const pipe = await TextToVideoPipeline.fromPretrained(MODEL);
  const prompts = Array.from(
    { length: o.videos },
    (_, i) => worldSample(o.seed, i, { width: W, height: H, frames: 16, split: 'heldout' }).caption,
  );
  const common = { numInferenceSteps: o.steps, fps: 8, guidanceScale: 9, height: H, width: W };
  const results: Array<{ row: string; prompt: string; scores: Scores }> = [];
  const t0 = performance.now();
  for (const [i, prompt] of prompts.entries()) {
    const seed = o.seed + i;
    const input: Uint8Array[] = [];
    const g0 = performance.now();
    const long = { ...common, prompt, seed, numFrames: FRAMES, ...GEN };
    for await (const e of generateLongVideo(pipe, long, naiveMode()))
      if (e.kind === 'chunk-done') input.push(...e.frames);
    const genSeconds = (performance.now() - g0) / 1000;
    for (const row of ROWS) {
      const start = performance.now();
      let frames = input;
      if (row.blend) {
        frames = [];
        const opts = { ...common, prompt, seed, numFrames: FRAMES, ...REFINE, blend: row.blend };
        for await (const e of refineVideo(pipe, input, opts))
          if (e.kind === 'chunk-done') frames.push(...e.frames);
      }
      const seconds = row.blend ? (performance.now() - start) / 1000 : genSeconds;
      const scores = await score(frames, seconds);
      results.push({ row: row.label, prompt, scores });
      process.stderr.write(
        `"${prompt}" · ${row.label}: ${JSON.stringify(scores)} (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`,
      );
    }
  }
  if (o.json) writeJsonAtomic(o.json, { settings: { ...o, prompts, GEN, REFINE, FRAMES }, results });
  const f = (v: number | null, d: number) => (v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(d));
  const mean = (xs: (number | null)[]) => {
    const v = xs.filter((x): x is number => x !== null);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  const lines = [
    '| row | flow-std over refine overlaps ↓ | MAWE ↓ | SCuts ↓ | s / video |',
    '|---|---|---|---|---|',
    ...ROWS.map((row) => {
      const rs = results.filter((r) => r.row === row.label).map((r) => r.scores);
      return `| ${row.label} | ${f(mean(rs.map((r) => r.overlapFlowStd)), 3)} | ${f(mean(rs.map((r) => r.mawe)), 3)} | ${f(mean(rs.map((r) => r.scuts)), 2)} | ${f(mean(rs.map((r) => r.seconds)), 0)} |`;
    }),
  ];
  console.log(
    `${o.videos} held-out prompts × seed ${o.seed}+i; input: naive ${FRAMES} frames, chunk ${GEN.chunk}/${GEN.overlap}, ` +
      `${o.steps} DDIM steps, guidance 9, ${W}×${H}; refine ${REFINE.chunk}/${REFINE.overlap} from T′ = ${REFINE.strength} ` +
      `with models/default; the input row's seconds are its generation; wall ${((performance.now() - t0) / 60000).toFixed(1)} min`,
  );
  console.log(prompts.map((p, i) => `prompt ${i}: "${p}"`).join('\n'));
  console.log(lines.join('\n'));
}

await main();
