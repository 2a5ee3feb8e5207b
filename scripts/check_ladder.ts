// `npm run check:ladder -- --rung N [options]`: the learnability ladder (issue 27, step 2). World subsets of
// growing difficulty (`src/training/data/ladder.ts`: L0 one large red circle on solid blue in 4 directions,
// L1 + 6 colours, L2 + all shapes and sizes, L3 + patterned backgrounds, L4 the full world), each trained
// with the same budget and recipe, then scored by the world's oracle on held-out prompts. The recipe is a
// committed training config (default configs/unet/ladder_f.json: the direction gate's passing run F — zero
// terminal SNR, half the samples at t = 999, SNR ÷ 64, timestep shift 3, the text encoder at ×10 learning
// rate with the caption-attribute probe, frame positions and temporal text attention); --rung sets its
// data.ladder_rung, --steps/--batch/--lr its budget.
// Every training index is a new scene, so "distinct scenes" = steps × batch (÷ 4 with contrast groups).
// Prints one markdown row per rung (steps, wall time, distinct scenes, loss, held-out direction/colour/shape
// accuracy, the one-step x̂₀ and sampled velocity along the prompted direction, and the oracle on training
// prompts) and writes <out>/report.json.
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { intOption, positiveOption } from '../src/cli/options.js';
import { writeFileAtomic } from '../src/io/safetensors.js';
import { writeVideo } from '../src/io/video/index.js';
import { hostTensor } from '../src/engine/runtime.js';
import { Generator } from '../src/engine/random.js';
import { TextToVideoPipeline, postprocess } from '../src/pipelines/text_to_video.js';
import { DEFAULT_MODEL_DIR, createUnetStage, trainSchedulerConfig } from '../src/training/stages/unet.js';
import { readUnetRecipe } from '../src/training/stages/unet_recipe.js';
import { DDPMScheduler } from '../src/schedulers/ddpm.js';
import { COLOUR_RGB, canonicalCaption } from '../src/training/data/world.js';
import type { SceneSpec } from '../src/training/data/world.js';
import { ladderScoredScene } from '../src/training/data/ladder.js';
import { colourMassVelocity, velocityAlong } from '../src/training/data/colour_mass.js';
import { scoreVideo } from '../src/training/data/oracle.js';
import { compileUnetOneStep, exportRunModel } from './lib/unet_one_step.js';

const SIZE = 64;

const o = new Command('check:ladder')
  .requiredOption('--rung <n>', 'ladder rung 0–4', intOption('--rung', 0))
  .option('--config <recipe.json>', 'training recipe', 'configs/unet/ladder_f.json')
  .option('--init <dir|ckpt>', 'model folder or UNet checkpoint to fine-tune', DEFAULT_MODEL_DIR)
  .option('--out <dir>', 'run folder (default runs/ladder_L<rung>)')
  .option('--steps <n>', "training steps (default: the recipe's)", intOption('--steps', 1))
  .option('--batch <n>', "clips per step (default: the recipe's)", intOption('--batch', 1))
  .option('--lr <x>', "peak learning rate (default: the recipe's)", positiveOption('--lr'))
  .option('--prompts <n>', 'held-out (and training) prompts scored', intOption('--prompts', 1), 12)
  .option('--sample-steps <n>', 'DDIM steps of the scored videos', intOption('--sample-steps', 1), 20)
  .option('--guidance <x>', 'guidance scale of the scored videos', positiveOption('--guidance'), 5)
  .option('--one-step-only', 'measure the one-step x̂₀ diagnostic only (no sampled videos, no oracle)')
  .option('--skip-train', 'score the run folder as it is (after an interrupted or earlier run)')
  .parse(process.argv)
  .opts<{
    rung: number;
    config: string;
    init: string;
    out?: string;
    steps?: number;
    batch?: number;
    lr?: number;
    prompts: number;
    sampleSteps: number;
    guidance: number;
    oneStepOnly?: boolean;
    skipTrain?: boolean;
  }>();
if (o.rung > 4) throw new Error(`--rung must be 0–4, got ${o.rung}`);
const recipe = readUnetRecipe(resolve(o.config));
const settings = { ...recipe.settings, ladderRung: o.rung };
const steps = o.steps ?? recipe.training.steps ?? 300;
const batch = o.batch ?? recipe.training.batch ?? 2;
const FRAMES = settings.frames ?? 16;
const contrast = settings.contrast === true;
const ladder = { size: SIZE, frames: FRAMES, contrast, fixedTrack: settings.fixedTrack === true };

const out = resolve(o.out ?? `runs/ladder_L${o.rung}`);
const t0 = Date.now();
if (o.skipTrain !== true) {
  await createUnetStage({ componentsDir: DEFAULT_MODEL_DIR }).run({
    out,
    steps,
    batch,
    lr: o.lr ?? recipe.training.lr ?? 5e-4,
    seed: recipe.training.seed ?? o.rung,
    checkpointEvery: 50,
    init: resolve(o.init),
    unetSettings: settings,
    ...(recipe.unet && { configOverrides: recipe.unet }),
  });
}
const trainSeconds = (Date.now() - t0) / 1000;

const pipe = await TextToVideoPipeline.fromPretrained(exportRunModel(out, DEFAULT_MODEL_DIR));
const { unet, vae } = pipe.components;
const shape = [1, unet.config.inChannels, FRAMES, SIZE / vae.scaleFactor, SIZE / vae.scaleFactor];
// The diagnostic that splits "the word is not read" from "the sampler loses it": the one-step x̂₀ at t = 999
// (pure noise under zero terminal SNR) for each scored prompt, decoded, and its colour-mass velocity along the
// prompted direction (px/frame; the clips move at +SPEED_PX.fast). Conditional only, no guidance pair.
const unetStep = await compileUnetOneStep(unet, shape);
const a999 = DDPMScheduler.fromConfig(
  trainSchedulerConfig(settings.zeroTerminalSnr === true, settings.noiseShift ?? 1),
).alphasCumprod[999]!;
const oneStepAlong = async (prompt: string, scene: SceneSpec, x: Float32Array): Promise<number> => {
  const v = await unetStep(x, 999, await pipe.encodePrompt(prompt));
  const x0 = v.map((q, i) => Math.sqrt(a999) * x[i]! - Math.sqrt(1 - a999) * q);
  const frames = postprocess(await pipe.decodeLatents(hostTensor(x0, shape))).frames;
  const obj = scene.objects[0]!;
  const { vx, vy } = colourMassVelocity(frames, SIZE, COLOUR_RGB[obj.colour]);
  return velocityAlong(obj.motion, vx, vy);
};
type Tally = Record<'motion' | 'colour' | 'shape', { hit: number; of: number }>;
const groups: Record<string, Tally> = {};
const videos: {
  group: string;
  prompt: string;
  motion: boolean | null;
  colour: boolean | null;
  shape: boolean | null;
  oneStepAlong: number;
}[] = [];
const along: Record<string, number[]> = { heldout: [], train: [] };
const sampledAlong: Record<string, number[]> = { heldout: [], train: [] };
for (const group of ['heldout', 'train'] as const) {
  const tally: Tally = { motion: { hit: 0, of: 0 }, colour: { hit: 0, of: 0 }, shape: { hit: 0, of: 0 } };
  for (let k = 0; k < o.prompts; k++) {
    const scene = ladderScoredScene(o.rung, group, k, ladder);
    const prompt = canonicalCaption(scene);
    const noise = new Generator(5000 + k).normal(shape.reduce((p, q) => p * q, 1));
    const latents = hostTensor(noise, shape);
    const a1 = o.rung === 4 ? Number.NaN : await oneStepAlong(prompt, scene, noise);
    along[group]!.push(a1);
    if (o.oneStepOnly === true) {
      videos.push({ group, prompt, motion: null, colour: null, shape: null, oneStepAlong: a1 });
      process.stdout.write(`${group} ${k}: "${prompt}" one-step x̂₀ along ${a1.toFixed(2)} px/frame\n`);
      continue;
    }
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
    if (o.rung < 4) {
      const obj = scene.objects[0]!;
      const { vx, vy } = colourMassVelocity(frames, SIZE, COLOUR_RGB[obj.colour]);
      sampledAlong[group]!.push(velocityAlong(obj.motion, vx, vy));
    }
    for (const a of ['motion', 'colour', 'shape'] as const) {
      if (s[a] === null) continue;
      tally[a].of++;
      if (s[a]) tally[a].hit++;
    }
    videos.push({ group, prompt, motion: s.motion, colour: s.colour, shape: s.shape, oneStepAlong: a1 });
    if (k < 4)
      await writeVideo(join(out, `${group}_${k}.mp4`), frames, {
        width: SIZE,
        height: SIZE,
        fps: 8,
        format: 'mp4',
      });
    process.stdout.write(
      `${group} ${k}: "${prompt}" motion ${s.motion} colour ${s.colour} shape ${s.shape}; ` +
        `one-step x̂₀ along ${a1.toFixed(2)} px/frame\n`,
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
/** Mean px/frame along the prompted direction and how many of the prompts move the right way (> 0). */
const alongCell = (xs: number[]): string =>
  xs.length === 0 || xs.some((x) => Number.isNaN(x))
    ? '—'
    : `${(xs.reduce((p, q) => p + q, 0) / xs.length).toFixed(2)} (${xs.filter((x) => x > 0).length}/${xs.length})`;
// With fixed tracks rung 0 has only its 4 clips (one per direction).
const scenes =
  ladder.fixedTrack && o.rung === 0 ? 4 : contrast ? Math.ceil((steps * batch) / 4) : steps * batch;
const row =
  `| L${o.rung}${contrast ? ' contrast' : ''}${ladder.fixedTrack ? ' fixed track' : ''} | ${steps} × ${batch} | ${(trainSeconds / 60).toFixed(1)} min | ${scenes} | ` +
  `${finalLoss === null ? '—' : finalLoss.toFixed(4)} | ${pct(h.motion)} | ${pct(h.colour)} | ${pct(h.shape)} | ` +
  `${alongCell(along['heldout']!)} | ${alongCell(sampledAlong['heldout']!)} | ` +
  `${pct(tr.motion)} | ${pct(tr.colour)} | ${pct(tr.shape)} |`;
writeFileAtomic(
  join(out, 'report.json'),
  `${JSON.stringify({ options: o, recipe, trainSeconds, finalLoss, groups, along, sampledAlong, videos }, null, 2)}\n`,
);
process.stdout.write(
  '\n| rung | steps × batch | train wall | distinct scenes | final loss | held-out motion | colour | shape | ' +
    'one-step x̂₀ along (right way) | sampled along (right way) | train motion | colour | shape |\n' +
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|\n' +
    `${row}\n`,
);
