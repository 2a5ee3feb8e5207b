// `npm run eval:default [-- --heldout N --train N ...]`: how well the shipped default model follows prompts.
// Two prompt groups, each generated with fixed seeds (16 frames, 64×64, 25 DDIM steps by default):
//   heldout — combinations never trained on: every purple shape moving up / up-left / up-right and every
//             green-triangle motion the grammar allows (31 combinations), one single-object scene each;
//   train   — in-grammar single-object scenes from the training split.
// Prompts are the canonical captions of those scenes. Every video is scored by the world's oracle (colour,
// shape, motion, size), by SCuts (PySceneDetect AdaptiveDetector port; "no cut" = 0 cuts) and by MAWE. The
// world's own renders of the same scenes are scored too, as a check of the oracle itself; with
// --vae-round-trip, also those renders encoded and decoded by the model's VAE (the ceiling the VAE sets).
// Writes runs/eval_default/report.json, report.md and the generated videos; prints the table.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { intOption, numberOption, unitOption } from '../src/cli/options.js';
import { Generator } from '../src/engine/random.js';
import { hostTensor } from '../src/engine/runtime.js';
import type { AutoencoderKL } from '../src/models/vae/autoencoder_kl.js';
import { writeFileAtomic } from '../src/io/safetensors.js';
import { writeVideo } from '../src/io/video/index.js';
import { detectSceneCuts } from '../src/metrics/scenecuts.js';
import { mawe } from '../src/metrics/mawe.js';
import { TextToVideoPipeline, postprocess } from '../src/pipelines/text_to_video.js';
import { DEFAULT_MODEL_DIR } from '../src/cli/generate.js';
import {
  MOTIONS,
  SHAPES,
  canRotate,
  canonicalCaption,
  renderVideo,
  sampleScene,
  toFloatCHW,
} from '../src/training/data/world.js';
import type { MotionName, SceneSpec, ShapeName } from '../src/training/data/world.js';
import { scoreVideo } from '../src/training/data/oracle.js';

type Group = 'heldout' | 'train';
const ATTRIBUTES = ['colour', 'motion', 'shape', 'size'] as const;
type Attribute = (typeof ATTRIBUTES)[number];

interface EvalPrompt {
  group: Group;
  prompt: string;
  scene: SceneSpec;
  seed: number;
}

interface VideoResult {
  group: Group;
  prompt: string;
  seed: number;
  source: 'model' | 'world' | 'vae';
  scores: Record<Attribute, boolean | null>;
  sceneCuts: number;
  /** Cuts with min_scene_len 1 (a diagnostic: the default 15 frames leaves room for one cut at most in 16). */
  sceneCutsAnyLength: number;
  mawe: number | null;
  video?: string;
}

interface Options {
  model: string;
  out: string;
  heldout: number;
  train: number;
  frames: number;
  size: number;
  steps: number;
  guidance: number;
  guidanceRescale: number;
  fps: number;
  seed: number;
  maweSize: number | null;
  reference: boolean;
  vaeRoundTrip: boolean;
}

/** The 31 held-out (colour, shape, motion) combinations: purple × every shape × up motions, green triangles. */
function heldOutCombinations(): Array<{ colour: 'purple' | 'green'; shape: ShapeName; motion: MotionName }> {
  const up: MotionName[] = ['up', 'up-left', 'up-right'];
  const purple = SHAPES.flatMap((shape) =>
    up.map((motion) => ({ colour: 'purple' as const, shape, motion })),
  );
  const green = MOTIONS.filter((m) => m !== 'rotate' || canRotate('triangle')).map((motion) => ({
    colour: 'green' as const,
    shape: 'triangle' as ShapeName,
    motion,
  }));
  return [...purple, ...green];
}

/** A single-object scene without camera pan from `split` that satisfies `accept` (rejection sampling). */
function findScene(rng: Generator, split: 'train' | 'heldout', accept: (s: SceneSpec) => boolean): SceneSpec {
  for (let tries = 0; tries < 200_000; tries++) {
    const scene = sampleScene(rng, { split, frames: 16 });
    if (scene.objects.length === 1 && scene.cameraPan === null && accept(scene)) return scene;
  }
  throw new Error(`eval: no ${split} scene found for a requested combination`);
}

/** Fisher–Yates with the project's RNG: the first n of a seeded permutation. */
function sample<T>(items: T[], n: number, rng: Generator): T[] {
  const a = [...items];
  const u = rng.uniform(a.length);
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(u[i]! * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a.slice(0, n);
}

function buildPrompts(o: Options): EvalPrompt[] {
  const rng = new Generator(o.seed);
  const combos = sample(heldOutCombinations(), o.heldout, rng);
  const heldout = combos.map((c, i) => {
    const scene = findScene(rng, 'heldout', (s) => {
      const obj = s.objects[0]!;
      return obj.colour === c.colour && obj.shape === c.shape && obj.motion === c.motion;
    });
    return { group: 'heldout' as const, prompt: canonicalCaption(scene), scene, seed: o.seed + i };
  });
  const train = Array.from({ length: o.train }, (_, i) => {
    const scene = findScene(rng, 'train', () => true);
    return { group: 'train' as const, prompt: canonicalCaption(scene), scene, seed: o.seed + 1000 + i };
  });
  return [...heldout, ...train];
}

async function measure(
  p: EvalPrompt,
  source: 'model' | 'world' | 'vae',
  frames: Uint8Array[],
  o: Options,
): Promise<VideoResult> {
  const s = scoreVideo(frames, o.size, o.size, p.prompt);
  const cuts = await detectSceneCuts(frames, o.size, o.size);
  const anyLength = await detectSceneCuts(frames, o.size, o.size, { minSceneLen: 1 });
  const m = await mawe(frames, o.size, o.size, {
    size: o.maweSize === null ? null : [o.maweSize, o.maweSize],
  });
  return {
    group: p.group,
    prompt: p.prompt,
    seed: p.seed,
    source,
    scores: { colour: s.colour, motion: s.motion, shape: s.shape, size: s.size },
    sceneCuts: cuts.cuts.length,
    sceneCutsAnyLength: anyLength.cuts.length,
    mawe: m.mawe,
  };
}

/**
 * RGB frames → the VAE's posterior mean → decoded → RGB frames (the pipeline's own postprocessing): the best a
 * model on this VAE could show the oracle.
 */
async function vaeRoundTrip(vae: AutoencoderKL, frames: Uint8Array[], size: number): Promise<Uint8Array[]> {
  const images = hostTensor(toFloatCHW(frames, size, size), [frames.length, 3, size, size]);
  const { mean } = await vae.encode(images);
  const decoded = (await vae.decode(mean, { numFrames: frames.length })).data as Float32Array;
  const perFrame = 3 * size * size;
  return frames.map(
    (_, f) =>
      postprocess(hostTensor(decoded.subarray(f * perFrame, (f + 1) * perFrame), [1, 3, 1, size, size]))
        .frames[0]!,
  );
}

async function generateAll(
  pipe: TextToVideoPipeline,
  prompts: EvalPrompt[],
  o: Options,
): Promise<VideoResult[]> {
  const videos = join(o.out, 'videos');
  mkdirSync(videos, { recursive: true });
  const results: VideoResult[] = [];
  for (const [i, p] of prompts.entries()) {
    const t0 = performance.now();
    let frames: Uint8Array[] = [];
    const settings = { numFrames: o.frames, height: o.size, width: o.size, numInferenceSteps: o.steps };
    for await (const e of pipe.generate({
      prompt: p.prompt,
      guidanceScale: o.guidance,
      guidanceRescale: o.guidanceRescale,
      fps: o.fps,
      seed: p.seed,
      ...settings,
    }))
      if (e.kind === 'done') frames = e.frames;
    const file = join(videos, `${p.group}_${String(i).padStart(3, '0')}.mp4`);
    await writeVideo(file, frames, { width: o.size, height: o.size, fps: o.fps, format: 'mp4' });
    const r = { ...(await measure(p, 'model', frames, o)), video: file };
    results.push(r);
    const marks = ATTRIBUTES.map(
      (a) => `${a} ${r.scores[a] === null ? '-' : r.scores[a] ? 'ok' : 'NO'}`,
    ).join(', ');
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    process.stderr.write(
      `[${i + 1}/${prompts.length}] ${p.group} "${p.prompt}": ${marks}, cuts ${r.sceneCuts} (${secs} s)\n`,
    );
  }
  return results;
}

interface GroupSummary {
  videos: number;
  accuracy: Record<Attribute, number | null>;
  noSceneCut: number;
  noSceneCutAnyLength: number;
  meanMawe: number | null;
}

function summarize(rows: VideoResult[]): GroupSummary {
  const rate = (xs: boolean[]): number | null => (xs.length ? xs.filter(Boolean).length / xs.length : null);
  const accuracy = Object.fromEntries(
    ATTRIBUTES.map((a) => [a, rate(rows.map((r) => r.scores[a]).filter((v): v is boolean => v !== null))]),
  ) as Record<Attribute, number | null>;
  const maweValues = rows.map((r) => r.mawe).filter((v): v is number => v !== null && Number.isFinite(v));
  return {
    videos: rows.length,
    accuracy,
    noSceneCut: rate(rows.map((r) => r.sceneCuts === 0)) ?? 0,
    noSceneCutAnyLength: rate(rows.map((r) => r.sceneCutsAnyLength === 0)) ?? 0,
    meanMawe: maweValues.length ? maweValues.reduce((a, b) => a + b, 0) / maweValues.length : null,
  };
}

const TARGETS: Partial<Record<Attribute | 'noSceneCut', number>> = {
  colour: 0.9,
  motion: 0.8,
  shape: 0.7,
  noSceneCut: 0.95,
};

function markdown(summary: Record<string, GroupSummary>, o: Options): string {
  const pct = (v: number | null): string => (v === null ? '–' : `${(100 * v).toFixed(1)} %`);
  const lines = [
    `Default model evaluation: ${o.frames} frames ${o.size}×${o.size}, ${o.steps} DDIM steps, guidance ${o.guidance}${o.guidanceRescale > 0 ? ` (rescale ${o.guidanceRescale})` : ''}, fps ${o.fps}; ` +
      `MAWE on ${o.maweSize === null ? `native ${o.size}×${o.size}` : `${o.maweSize}×${o.maweSize}`} flow. ` +
      '"No scene cut" is SCuts = 0 with PySceneDetect\'s defaults (min_scene_len 15, so a 16-frame clip can show ' +
      'at most one cut, at frame 13); the next column repeats it with min_scene_len 1.',
    '',
    '| group | videos | colour | motion (direction) | shape | size | no scene cut | no cut, min_scene_len 1 | mean MAWE |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [name, s] of Object.entries(summary)) {
    const a = s.accuracy;
    lines.push(
      `| ${name} | ${s.videos} | ${pct(a.colour)} | ${pct(a.motion)} | ${pct(a.shape)} | ${pct(a.size)} | ` +
        `${pct(s.noSceneCut)} | ${pct(s.noSceneCutAnyLength)} | ${s.meanMawe === null ? '–' : s.meanMawe.toFixed(4)} |`,
    );
  }
  const h = summary['held-out (model)'];
  if (h) {
    const check = (k: Attribute | 'noSceneCut'): string => {
      const v = k === 'noSceneCut' ? h.noSceneCut : h.accuracy[k];
      const t = TARGETS[k]!;
      return `${k} ${pct(v)} (target ≥ ${pct(t)}: ${v !== null && v >= t ? 'met' : 'NOT met'})`;
    };
    lines.push(
      '',
      `Held-out targets: ${(['colour', 'motion', 'shape', 'noSceneCut'] as const).map(check).join('; ')}.`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function parseOptions(argv: string[]): Options {
  const cmd = new Command('eval:default')
    .option('--model <dir>', 'pipeline folder', DEFAULT_MODEL_DIR)
    .option('--out <dir>', 'report folder', 'runs/eval_default')
    .option('--heldout <n>', 'held-out prompts (max 31)', intOption('--heldout', 0), 31)
    .option('--train <n>', 'training-style prompts', intOption('--train', 0), 30)
    .option('--frames <n>', 'frames per video', intOption('--frames', 2), 16)
    .option('--size <px>', 'frame width and height', intOption('--size', 8), 64)
    .option('--steps <n>', 'DDIM steps', intOption('--steps', 1), 25)
    .option('--guidance <x>', 'classifier-free guidance scale', numberOption('--guidance'), 9)
    .option('--guidance-rescale <phi>', 'guidance rescale in [0, 1]', unitOption('--guidance-rescale'), 0)
    .option('--fps <n>', 'fps conditioning', intOption('--fps', 1), 8)
    .option('--seed <n>', 'seed of the prompt sample and the generation seeds', intOption('--seed', 0), 0)
    .option('--mawe-size <px>', "flow resolution for MAWE: 'native' or a size such as 720", 'native')
    .option('--no-reference', 'skip scoring the world renders of the same scenes')
    .option(
      '--vae-round-trip',
      "also score the world renders encoded and decoded by the model's VAE (what the VAE lets through)",
    )
    .parse(argv, { from: 'user' });
  const f = cmd.opts<Record<string, unknown>>();
  const maweRaw = String(f['maweSize']);
  const maweSize = maweRaw === 'native' ? null : intOption('--mawe-size', 8)(maweRaw);
  if (!Number.isFinite(f['guidance'])) throw new Error('--guidance must be a number');
  return {
    model: resolve(String(f['model'])),
    out: resolve(String(f['out'])),
    heldout: Math.min(31, f['heldout'] as number),
    train: f['train'] as number,
    frames: f['frames'] as number,
    size: f['size'] as number,
    steps: f['steps'] as number,
    guidance: f['guidance'] as number,
    guidanceRescale: f['guidanceRescale'] as number,
    fps: f['fps'] as number,
    seed: f['seed'] as number,
    maweSize,
    reference: f['reference'] !== false,
    vaeRoundTrip: f['vaeRoundTrip'] === true,
  };
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  mkdirSync(o.out, { recursive: true });
  const prompts = buildPrompts(o);
  const t0 = performance.now();
  const pipe = await TextToVideoPipeline.fromPretrained(o.model);
  const results = await generateAll(pipe, prompts, o);
  const reference: VideoResult[] = [];
  const roundTrip: VideoResult[] = [];
  if (o.reference || o.vaeRoundTrip)
    for (const p of prompts) {
      const frames = renderVideo(p.scene, { width: o.size, height: o.size, frames: o.frames });
      if (o.reference) reference.push(await measure(p, 'world', frames, o));
      if (o.vaeRoundTrip)
        roundTrip.push(await measure(p, 'vae', await vaeRoundTrip(pipe.components.vae, frames, o.size), o));
    }
  const by = (rows: VideoResult[], g: Group): VideoResult[] => rows.filter((r) => r.group === g);
  const summary: Record<string, GroupSummary> = {
    'held-out (model)': summarize(by(results, 'heldout')),
    'training-style (model)': summarize(by(results, 'train')),
  };
  if (o.reference) {
    summary['held-out (world render)'] = summarize(by(reference, 'heldout'));
    summary['training-style (world render)'] = summarize(by(reference, 'train'));
  }
  if (o.vaeRoundTrip) {
    summary['held-out (world render → VAE → back)'] = summarize(by(roundTrip, 'heldout'));
    summary['training-style (world render → VAE → back)'] = summarize(by(roundTrip, 'train'));
  }
  const table = markdown(summary, o);
  const report = {
    settings: o,
    seconds: Math.round((performance.now() - t0) / 100) / 10,
    summary,
    videos: results,
    reference,
    vaeRoundTrip: roundTrip,
  };
  writeFileAtomic(join(o.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileAtomic(join(o.out, 'report.md'), table);
  process.stdout.write(table);
  process.stderr.write(`wrote ${join(o.out, 'report.json')} and report.md\n`);
}

await main();
