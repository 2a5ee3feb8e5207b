// `npm run check:direction [-- options]`: the direction gate. Can the UNet learn to take the direction of motion
// from the caption at all? Two clips that differ ONLY in the direction word — the same large red circle on the
// same blue background, moving fast left or right along a track centred in the frame — are both in every
// batch of a short fine-tune from the shipped model. Then, at t = 999 (pure noise under zero-terminal-SNR
// betas), the UNet's one-step estimate of the clean clip is made from the same noise with the caption "…left…"
// and "…right…", decoded, and the horizontal velocity of the red colour mass measured; the same for full
// sampled videos. The gate passes when the sign of the velocity follows the caption for every noise draw.
// What it isolates: the data cannot tell the words apart by anything else (colour, shape, background), and
// the input at t = 999 carries no trace of the clip, so only the word can set the direction.
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { intOption, positiveOption } from '../src/cli/options.js';
import { writeFileAtomic } from '../src/io/safetensors.js';
import { writeVideo } from '../src/io/video/index.js';
import { hostTensor } from '../src/engine/runtime.js';
import { Generator } from '../src/engine/random.js';
import { TextToVideoPipeline, postprocess } from '../src/pipelines/text_to_video.js';
import { DEFAULT_MODEL_DIR, createUnetStage, trainSchedulerConfig } from '../src/training/stages/unet.js';
import { DDPMScheduler } from '../src/schedulers/ddpm.js';
import { COLOUR_RGB, canonicalCaption, renderVideo } from '../src/training/data/world.js';
import type { SceneSpec } from '../src/training/data/world.js';
import { colourMassVelocity } from '../src/training/data/colour_mass.js';
import { SPEED_PX } from '../src/training/data/render.js';
import { compileUnetOneStep, exportRunModel } from './lib/unet_one_step.js';

const SIZE = 64;
const FRAMES = 16;

const o = new Command('check:direction')
  .option('--init <dir|ckpt>', 'model folder or UNet checkpoint to fine-tune', DEFAULT_MODEL_DIR)
  .option('--out <dir>', 'run folder (checkpoints, model, videos, report.json)', 'runs/direction')
  .option('--steps <n>', 'fine-tuning steps (both clips in every batch)', intOption('--steps', 1), 300)
  .option('--lr <x>', 'peak learning rate', positiveOption('--lr'), 5e-4)
  .option('--draws <n>', 'noise draws the gate is judged on', intOption('--draws', 1), 6)
  .option('--shift <s>', 'timestep shift (SD3) of the training timesteps', positiveOption('--shift'), 3)
  .option(
    '--terminal-share <p>',
    'share of the samples trained at t = 999 exactly',
    (v: string) => {
      const x = Number(v);
      if (!(x >= 0 && x < 1)) throw new Error(`--terminal-share must be in [0, 1), got ${v}`);
      return x;
    },
    0,
  )
  .option('--noise-shift <s>', "noise schedule's SNR divided by s² (≥ 1)", positiveOption('--noise-shift'), 1)
  .option('--no-zero-snr', 'train on ModelScope betas instead of zero terminal SNR')
  .option('--no-text-encoder', 'keep the text encoder frozen')
  .option(
    '--text-lr-scale <x>',
    "the text encoder's learning rate over the UNet's",
    positiveOption('--text-lr-scale'),
    1,
  )
  .option(
    '--text-probe <w>',
    'weight of the caption-attribute probe on the text states (needs the text encoder trained)',
    positiveOption('--text-probe'),
  )
  .option('--positions', 'sinusoidal frame positions in the temporal transformers')
  .option('--temporal-text', 'temporal transformers attend to the text (zero-initialised branch)')
  .option(
    '--sample-steps <n>',
    'steps of the full sampled videos (0: skip them)',
    intOption('--sample-steps', 0),
    20,
  )
  .option('--guidance <x>', 'guidance scale of the sampled videos', positiveOption('--guidance'), 5)
  .parse(process.argv)
  .opts<{
    init: string;
    out: string;
    steps: number;
    lr: number;
    draws: number;
    shift: number;
    terminalShare: number;
    noiseShift: number;
    zeroSnr: boolean;
    textEncoder: boolean;
    textLrScale: number;
    textProbe?: number;
    positions?: boolean;
    temporalText?: boolean;
    sampleSteps: number;
    guidance: number;
  }>();

/** The scene moving `dir`, its track centred horizontally (it crosses the middle at the clip's midpoint). */
function scene(dir: 'left' | 'right'): SceneSpec {
  const travel = (SPEED_PX.fast * (FRAMES - 1)) / SIZE; // in [0, 1] units of the frame
  const x = dir === 'left' ? 0.5 + travel / 2 : 0.5 - travel / 2;
  return {
    objects: [{ shape: 'circle', colour: 'red', size: 'large', motion: dir, speed: 'fast', start: [x, 0.5] }],
    background: { kind: 'solid', colour: 'blue' },
    cameraPan: null,
  };
}
const clips = (['left', 'right'] as const).map((d) => {
  const s = scene(d);
  return {
    dir: d,
    caption: canonicalCaption(s),
    frames: renderVideo(s, { width: SIZE, height: SIZE, frames: FRAMES }),
  };
});
const out = resolve(o.out);
const red = COLOUR_RGB.red;
const vx = (frames: Uint8Array[]): number => colourMassVelocity(frames, SIZE, red).vx;
for (const c of clips)
  process.stdout.write(`clip "${c.caption}": colour-mass vx ${vx(c.frames).toFixed(2)} px/frame\n`);

const t0 = Date.now();
await createUnetStage({
  source: (index) => clips[index % clips.length]!,
  componentsDir: DEFAULT_MODEL_DIR,
  frames: FRAMES,
  images: 0,
  warmupSteps: Math.min(20, o.steps),
  emaDecay: 0.9,
  timestepShift: o.shift,
  terminalShare: o.terminalShare,
  noiseShift: o.noiseShift,
  ...(o.textEncoder && o.textLrScale !== 1 && { textLrScale: o.textLrScale }),
  ...(o.textEncoder && o.textProbe !== undefined && { textProbe: o.textProbe }),
}).run({
  out,
  steps: o.steps,
  batch: clips.length,
  lr: o.lr,
  seed: 0,
  checkpointEvery: 50,
  init: resolve(o.init),
  ...(o.textEncoder && { trainTextEncoder: true }),
  ...(o.zeroSnr && { zeroTerminalSnr: true }),
  ...(o.positions === true && { temporalPositions: true }),
  ...(o.temporalText === true && { temporalTextAttention: true }),
});
const trainSeconds = (Date.now() - t0) / 1000;

const pipe = await TextToVideoPipeline.fromPretrained(exportRunModel(out, DEFAULT_MODEL_DIR));
const { unet, vae } = pipe.components;
const shape = [1, unet.config.inChannels, FRAMES, SIZE / vae.scaleFactor, SIZE / vae.scaleFactor];
const unetStep = await compileUnetOneStep(unet, shape);
const a999 = DDPMScheduler.fromConfig(trainSchedulerConfig(o.zeroSnr, o.noiseShift)).alphasCumprod[999]!;
const n = shape.reduce((p, q) => p * q, 1);
const rows: { draw: number; oneStep: Record<string, number>; sampled: Record<string, number> }[] = [];
for (let draw = 0; draw < o.draws; draw++) {
  const x = new Generator(1000 + draw).normal(n);
  const oneStep: Record<string, number> = {};
  const sampled: Record<string, number> = {};
  for (const c of clips) {
    // v-prediction: x̂₀ = √ᾱ·x − √(1−ᾱ)·v̂; with zero terminal SNR ᾱ_999 = 0, the input is the noise alone.
    const v = await unetStep(x, 999, await pipe.encodePrompt(c.caption));
    const x0 = v.map((q, i) => Math.sqrt(a999) * x[i]! - Math.sqrt(1 - a999) * q);
    oneStep[c.dir] = vx(postprocess(await pipe.decodeLatents(hostTensor(x0, shape))).frames);
    if (o.sampleSteps > 0) {
      let frames: Uint8Array[] = [];
      for await (const e of pipe.generate({
        prompt: c.caption,
        latents: hostTensor(x, shape),
        numInferenceSteps: o.sampleSteps,
        guidanceScale: o.guidance,
        fps: 8,
      }))
        if (e.kind === 'done') frames = e.frames;
      sampled[c.dir] = vx(frames);
      if (draw === 0)
        await writeVideo(join(out, `gen_${c.dir}.mp4`), frames, {
          width: SIZE,
          height: SIZE,
          fps: 8,
          format: 'mp4',
        });
    }
  }
  rows.push({ draw, oneStep, sampled });
  process.stdout.write(
    `draw ${draw}: one-step x̂₀ vx left ${oneStep['left']!.toFixed(3)} right ${oneStep['right']!.toFixed(3)}` +
      (o.sampleSteps > 0
        ? `; sampled vx left ${sampled['left']!.toFixed(2)} right ${sampled['right']!.toFixed(2)}`
        : '') +
      '\n',
  );
}
const follows = (r: Record<string, number>): boolean => r['left']! < 0 && r['right']! > 0;
const oneStepPass = rows.every((r) => follows(r.oneStep));
const sampledPass = o.sampleSteps > 0 && rows.every((r) => follows(r.sampled));
const report = { options: o, trainSeconds, oneStepPass, sampledPass, rows };
writeFileAtomic(join(out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
process.stdout.write(
  `\ndirection gate: one-step x̂₀ at t=999 ${oneStepPass ? 'PASS' : 'FAIL'}; sampled ${o.sampleSteps > 0 ? (sampledPass ? 'PASS' : 'FAIL') : 'skipped'} ` +
    `(${o.draws} draws, ${o.steps} steps, ${(trainSeconds / 60).toFixed(1)} min training)\n`,
);
process.exitCode = oneStepPass ? 0 : 1;
