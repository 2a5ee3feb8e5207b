// `npm run check:ladder -- --rung N [options]`: the learnability ladder (issue 27, step 2). World subsets of
// growing difficulty, each trained with the same budget and the recipe that passed the direction gate (zero
// terminal SNR, timestep shift, the text encoder trained with a caption-attribute probe), then scored by the
// world's oracle on held-out prompts. Defaults are the gate's passing recipe (run F in the model card: half
// the samples at t = 999, SNR ÷ 64, text encoder at ×10 learning rate with the probe, frame positions and
// temporal text attention):
//   L0  one large red circle on solid blue, 4 directions, fast (only the direction word varies)
//   L1  + 6 colours                 L2  + all shapes and both sizes
//   L3  + gradient/striped/checkered backgrounds                 L4  the full world (worldSample's train split)
// Held out: for L1–L3 the (colour, direction) pairs with (colour index + direction index) % 4 = 0 are never
// trained on and are the held-out prompts; L0 has only 4 captions, so its held-out prompts are the same
// captions on new noise and new start offsets; L4 uses the world's own held-out split (isHeldOut).
// Every training index is a new scene (sample seed = rung, index), so "distinct scenes" = steps × batch.
// Prints one markdown row per rung (steps, wall time, distinct scenes, loss, held-out direction/colour/shape
// accuracy, and the same on training prompts) and writes <out>/report.json.
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { intOption, positiveOption } from '../src/cli/options.js';
import { writeFileAtomic } from '../src/io/safetensors.js';
import { writeVideo } from '../src/io/video/index.js';
import { hostTensor } from '../src/engine/runtime.js';
import { Generator } from '../src/engine/random.js';
import { TextToVideoPipeline } from '../src/pipelines/text_to_video.js';
import { DEFAULT_MODEL_DIR, createUnetStage } from '../src/training/stages/unet.js';
import {
  SHAPES,
  canonicalCaption,
  contrastsWith,
  renderVideo,
  sampleScene,
  sampleSeed,
  worldSample,
} from '../src/training/data/world.js';
import type { Background, ColourName, MotionName, SceneSpec } from '../src/training/data/world.js';
import { SPEED_PX } from '../src/training/data/render.js';
import { scoreVideo } from '../src/training/data/oracle.js';
import { exportRunModel } from './lib/unet_one_step.js';

const SIZE = 64;
const FRAMES = 16;
const DIRECTIONS = ['left', 'right', 'up', 'down'] as const satisfies readonly MotionName[];
const LADDER_COLOURS = [
  'red',
  'yellow',
  'green',
  'orange',
  'white',
  'pink',
] as const satisfies readonly ColourName[];
const BLUE: Background = { kind: 'solid', colour: 'blue' };

const o = new Command('check:ladder')
  .requiredOption('--rung <n>', 'ladder rung 0–4', intOption('--rung', 0))
  .option('--init <dir|ckpt>', 'model folder or UNet checkpoint to fine-tune', DEFAULT_MODEL_DIR)
  .option('--out <dir>', 'run folder (default runs/ladder_L<rung>)')
  .option('--steps <n>', 'training steps (the fixed budget of every rung)', intOption('--steps', 1), 300)
  .option('--batch <n>', 'clips per step', intOption('--batch', 1), 2)
  .option('--lr <x>', 'peak learning rate', positiveOption('--lr'), 5e-4)
  .option('--prompts <n>', 'held-out (and training) prompts scored', intOption('--prompts', 1), 12)
  .option('--sample-steps <n>', 'DDIM steps of the scored videos', intOption('--sample-steps', 1), 20)
  .option('--guidance <x>', 'guidance scale of the scored videos', positiveOption('--guidance'), 5)
  .option('--text-probe <w>', 'weight of the caption-attribute probe', positiveOption('--text-probe'), 0.1)
  .option('--shift <s>', 'timestep shift (SD3) of the training timesteps', positiveOption('--shift'), 3)
  .option(
    '--terminal-share <p>',
    'share of the samples trained at t = 999',
    positiveOption('--terminal-share'),
    0.5,
  )
  .option('--noise-shift <s>', "noise schedule's SNR divided by s²", positiveOption('--noise-shift'), 8)
  .option(
    '--text-lr-scale <x>',
    "the text encoder's learning rate over the UNet's",
    positiveOption('--text-lr-scale'),
    10,
  )
  .option(
    '--no-temporal-text',
    'no frame positions and no temporal text attention in the temporal transformers',
  )
  .option('--skip-train', 'score the run folder as it is (after an interrupted or earlier run)')
  .parse(process.argv)
  .opts<{
    rung: number;
    init: string;
    out?: string;
    steps: number;
    batch: number;
    lr: number;
    prompts: number;
    sampleSteps: number;
    guidance: number;
    textProbe: number;
    shift: number;
    terminalShare: number;
    noiseShift: number;
    textLrScale: number;
    temporalText: boolean;
    skipTrain?: boolean;
  }>();
if (o.rung > 4) throw new Error(`--rung must be 0–4, got ${o.rung}`);

/** (colour, direction) pairs never trained on in L1–L3. */
function heldOutPair(colour: ColourName, dir: MotionName): boolean {
  const c = (LADDER_COLOURS as readonly string[]).indexOf(colour);
  const d = (DIRECTIONS as readonly string[]).indexOf(dir);
  return c >= 0 && d >= 0 && (c + d) % 4 === 0;
}

const pick = <T>(rng: Generator, xs: readonly T[]): T =>
  xs[Math.floor(rng.uniform(1)[0]! * xs.length) % xs.length]!;

/** A start whose straight track is centred along its axis, offset at random across it. */
function centredStart(rng: Generator, dir: MotionName): [number, number] {
  const half = (SPEED_PX.fast * (FRAMES - 1)) / SIZE / 2;
  const across = 0.3 + 0.4 * rng.uniform(1)[0]!;
  if (dir === 'left') return [0.5 + half, across];
  if (dir === 'right') return [0.5 - half, across];
  if (dir === 'up') return [across, 0.5 + half];
  return [across, 0.5 - half];
}

function ladderScene(rung: number, rng: Generator, split: 'train' | 'heldout'): SceneSpec {
  for (;;) {
    const dir = pick(rng, DIRECTIONS);
    const background = rung >= 3 ? sampleScene(rng).background : BLUE;
    const colour = rung >= 1 ? pick(rng, LADDER_COLOURS) : 'red';
    if (!contrastsWith(colour, background)) continue;
    if (rung >= 1 && heldOutPair(colour, dir) !== (split === 'heldout')) continue;
    const scene: SceneSpec = {
      objects: [
        {
          shape: rung >= 2 ? pick(rng, SHAPES) : 'circle',
          colour,
          size: rung >= 2 ? pick(rng, ['small', 'large'] as const) : 'large',
          motion: dir,
          speed: 'fast',
          start: centredStart(rng, dir),
        },
      ],
      background,
      cameraPan: null,
    };
    return scene;
  }
}

/** Training sample `index` of the rung: a new scene per index (the data never repeats within a run). */
function trainSample(index: number): { caption: string; frames: Uint8Array[] } {
  if (o.rung === 4) {
    const s = worldSample(4, index, { width: SIZE, height: SIZE, frames: FRAMES, split: 'train' });
    return { caption: s.caption, frames: s.frames };
  }
  const scene = ladderScene(o.rung, new Generator(sampleSeed(o.rung, index)), 'train');
  return {
    caption: canonicalCaption(scene),
    frames: renderVideo(scene, { width: SIZE, height: SIZE, frames: FRAMES }),
  };
}

/** The k-th scored scene of a group, drawn apart from the training indices (another sample seed). */
function scoredScene(group: 'train' | 'heldout', k: number): SceneSpec {
  const rng = new Generator(sampleSeed(100 + o.rung + (group === 'heldout' ? 10 : 0), k));
  if (o.rung === 4) return sampleScene(rng, { split: group, frames: FRAMES });
  return ladderScene(o.rung, rng, group);
}

const out = resolve(o.out ?? `runs/ladder_L${o.rung}`);
const t0 = Date.now();
if (o.skipTrain !== true) {
  await createUnetStage({
    source: trainSample,
    componentsDir: DEFAULT_MODEL_DIR,
    frames: FRAMES,
    images: 0,
    warmupSteps: Math.min(20, o.steps),
    emaDecay: 0.9,
    timestepShift: o.shift,
    textProbe: o.textProbe,
    terminalShare: o.terminalShare,
    noiseShift: o.noiseShift,
    textLrScale: o.textLrScale,
  }).run({
    out,
    steps: o.steps,
    batch: o.batch,
    lr: o.lr,
    seed: o.rung,
    checkpointEvery: 50,
    init: resolve(o.init),
    trainTextEncoder: true,
    zeroTerminalSnr: true,
    ...(o.temporalText && { temporalPositions: true, temporalTextAttention: true }),
  });
}
const trainSeconds = (Date.now() - t0) / 1000;

const pipe = await TextToVideoPipeline.fromPretrained(exportRunModel(out, DEFAULT_MODEL_DIR));
const { unet, vae } = pipe.components;
const shape = [1, unet.config.inChannels, FRAMES, SIZE / vae.scaleFactor, SIZE / vae.scaleFactor];
type Tally = Record<'motion' | 'colour' | 'shape', { hit: number; of: number }>;
const groups: Record<string, Tally> = {};
const videos: {
  group: string;
  prompt: string;
  motion: boolean | null;
  colour: boolean | null;
  shape: boolean | null;
}[] = [];
for (const group of ['heldout', 'train'] as const) {
  const tally: Tally = { motion: { hit: 0, of: 0 }, colour: { hit: 0, of: 0 }, shape: { hit: 0, of: 0 } };
  for (let k = 0; k < o.prompts; k++) {
    const prompt = canonicalCaption(scoredScene(group, k));
    const latents = hostTensor(new Generator(5000 + k).normal(shape.reduce((p, q) => p * q, 1)), shape);
    let frames: Uint8Array[] = [];
    for await (const e of pipe.generate({
      prompt,
      latents,
      numInferenceSteps: o.sampleSteps,
      guidanceScale: o.guidance,
      fps: 8,
    }))
      if (e.kind === 'done') frames = e.frames;
    const s = scoreVideo(frames, SIZE, SIZE, prompt);
    for (const a of ['motion', 'colour', 'shape'] as const) {
      if (s[a] === null) continue;
      tally[a].of++;
      if (s[a]) tally[a].hit++;
    }
    videos.push({ group, prompt, motion: s.motion, colour: s.colour, shape: s.shape });
    if (k < 4)
      await writeVideo(join(out, `${group}_${k}.mp4`), frames, {
        width: SIZE,
        height: SIZE,
        fps: 8,
        format: 'mp4',
      });
    process.stdout.write(
      `${group} ${k}: "${prompt}" motion ${s.motion} colour ${s.colour} shape ${s.shape}\n`,
    );
  }
  groups[group] = tally;
}
const pct = (t: { hit: number; of: number }): string =>
  t.of === 0 ? '—' : `${Math.round((100 * t.hit) / t.of)} %`;
let finalLoss: number | null = null;
try {
  const m = JSON.parse((await import('node:fs')).readFileSync(join(out, 'metrics.json'), 'utf8')) as {
    final_loss?: number;
    train_seconds?: number;
  };
  finalLoss = m.final_loss ?? null;
} catch {
  finalLoss = null;
}
const h = groups['heldout']!;
const tr = groups['train']!;
const row =
  `| L${o.rung} | ${o.steps} × ${o.batch} | ${(trainSeconds / 60).toFixed(1)} min | ${o.steps * o.batch} | ` +
  `${finalLoss === null ? '—' : finalLoss.toFixed(4)} | ${pct(h.motion)} | ${pct(h.colour)} | ${pct(h.shape)} | ` +
  `${pct(tr.motion)} | ${pct(tr.colour)} | ${pct(tr.shape)} |`;
writeFileAtomic(
  join(out, 'report.json'),
  `${JSON.stringify({ options: o, trainSeconds, finalLoss, groups, videos }, null, 2)}\n`,
);
process.stdout.write(
  '\n| rung | steps × batch | train wall | distinct scenes | final loss | held-out motion | colour | shape | train motion | colour | shape |\n' +
    '|---|---|---|---|---|---|---|---|---|---|---|\n' +
    `${row}\n`,
);
