// `npm run check:overfit -- --init <unet checkpoint> [...]`: a sanity check of the UNet training and sampling
// path. Fine-tunes a UNet checkpoint on a handful of fixed world clips (single large object, straight-line
// motion, no camera pan, training split), then generates each clip's caption with the shipped pipeline and
// scores the video with the world's oracle. A model that has memorised its clips should give them back; what it
// gives back instead points at a mismatch between training and sampling (or at what the architecture cannot
// represent). Writes <out>/checkpoints, <out>/model (a pipeline folder), <out>/true_<k>.mp4,
// <out>/gen_<k>.mp4 and <out>/report.json.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { intOption, numberOption, positiveOption } from '../src/cli/options.js';
import { writeFileAtomic } from '../src/io/safetensors.js';
import { writeVideo } from '../src/io/video/index.js';
import { TextToVideoPipeline } from '../src/pipelines/text_to_video.js';
import { DEFAULT_MODEL_DIR } from '../src/cli/generate.js';
import { loadCheckpoint } from '../src/training/checkpoint.js';
import { TEXT_ENCODER_PREFIX, TEXT_PROBE_PREFIX, createUnetStage } from '../src/training/stages/unet.js';
import { canonicalCaption, isLinearMotion, worldSample } from '../src/training/data/world.js';
import { scoreVideo } from '../src/training/data/oracle.js';
import { exportRunModel } from './lib/unet_one_step.js';

const cmd = new Command('check:overfit')
  .requiredOption(
    '--init <checkpoint>',
    'UNet-stage checkpoint to start from (e.g. runs/unet_tx/checkpoints/ckpt-4000.safetensors)',
  )
  .option('--components <dir>', 'pipeline folder with tokenizer/, text_encoder/, vae/', DEFAULT_MODEL_DIR)
  .option('--out <dir>', 'output folder', 'runs/overfit')
  .option('--clips <n>', 'clips to memorise', intOption('--clips', 1), 4)
  .option('--frames <n>', 'frames per clip (training and generation)', intOption('--frames', 2), 16)
  .option('--steps <n>', 'fine-tuning steps (batch = all clips)', intOption('--steps', 1), 400)
  .option('--lr <x>', 'peak learning rate', positiveOption('--lr'), 5e-4)
  .option(
    '--guidance <x>',
    'classifier-free guidance scale of the generations',
    numberOption('--guidance'),
    3,
  )
  .option('--seed <n>', 'generation seed', intOption('--seed', 0), 1)
  .option(
    '--zero-terminal-snr',
    'fine-tune on zero-terminal-SNR betas (kinema train unet --zero-terminal-snr)',
  )
  .parse(process.argv);
const o = cmd.opts<{
  init: string;
  components: string;
  out: string;
  clips: number;
  frames: number;
  steps: number;
  lr: number;
  guidance: number;
  seed: number;
  zeroTerminalSnr?: boolean;
}>();
if (!existsSync(o.init)) cmd.error(`--init: ${o.init} does not exist`);
if (!(o.guidance >= 1)) cmd.error('--guidance must be at least 1');

// The run must match the checkpoint: a fine-tuned text encoder, a text probe, and the parameter-free switches.
const ckpt = loadCheckpoint(o.init);
const keys = [...ckpt.params.keys()];
const unetConfig = (ckpt.extra?.['unet_config'] ?? {}) as Record<string, unknown>;
const trainTextEncoder = keys.some((k) => k.startsWith(TEXT_ENCODER_PREFIX));
const probe = keys.some((k) => k.startsWith(TEXT_PROBE_PREFIX));
const shared = unetConfig['frame_noise_shared'];

const clips: { caption: string; frames: Uint8Array[] }[] = [];
for (let i = 0; clips.length < o.clips; i++) {
  const s = worldSample(0, i, { width: 64, height: 64, frames: o.frames, split: 'train' });
  const obj = s.scene.objects;
  if (
    obj.length !== 1 ||
    s.scene.cameraPan !== null ||
    !isLinearMotion(obj[0]!.motion) ||
    obj[0]!.size !== 'large'
  )
    continue;
  clips.push({ caption: canonicalCaption(s.scene), frames: s.frames });
}
const out = resolve(o.out);
await createUnetStage({
  source: (index) => clips[index % clips.length]!,
  componentsDir: o.components,
  frames: o.frames,
  images: 0,
  warmupSteps: Math.min(20, o.steps),
  emaDecay: 0.99,
}).run({
  out,
  steps: o.steps,
  batch: clips.length,
  lr: o.lr,
  seed: 0,
  checkpointEvery: 50,
  init: resolve(o.init),
  ...(trainTextEncoder && { trainTextEncoder: true }),
  ...(probe && { textProbe: 0.01 }),
  ...(unetConfig['temporal_positions'] === 'sinusoidal' && { temporalPositions: true }),
  ...(typeof shared === 'number' && { frameNoiseShared: shared }),
  ...(o.zeroTerminalSnr === true && { zeroTerminalSnr: true }),
});

const pipe = await TextToVideoPipeline.fromPretrained(exportRunModel(out, o.components));
const report = [];
for (const [k, clip] of clips.entries()) {
  let frames: Uint8Array[] = [];
  for await (const e of pipe.generate({
    prompt: clip.caption,
    guidanceScale: o.guidance,
    fps: 8,
    seed: o.seed,
    numFrames: o.frames,
    height: 64,
    width: 64,
    numInferenceSteps: 25,
  }))
    if (e.kind === 'done') frames = e.frames;
  const video = { width: 64, height: 64, fps: 8, format: 'mp4' as const };
  await writeVideo(join(out, `true_${k}.mp4`), clip.frames, video);
  await writeVideo(join(out, `gen_${k}.mp4`), frames, video);
  const truth = scoreVideo(clip.frames, 64, 64, clip.caption);
  const s = scoreVideo(frames, 64, 64, clip.caption);
  const pick = (x: typeof s) => ({ colour: x.colour, motion: x.motion, shape: x.shape, size: x.size });
  report.push({ caption: clip.caption, generated: pick(s), world: pick(truth) });
  process.stdout.write(
    `${k} "${clip.caption}": colour ${s.colour}, motion ${s.motion}, shape ${s.shape}, size ${s.size}\n`,
  );
}
writeFileAtomic(join(out, 'report.json'), `${JSON.stringify({ options: o, clips: report }, null, 2)}\n`);
process.stdout.write(`wrote ${join(out, 'report.json')}\n`);
