// `npm run check:caption-motion -- --model <pipeline folder> [...]`: does the UNet read the direction word of a
// caption? For world clips of one large object moving left, right, up or down (training split, no camera pan),
// the clip's latents are noised to timestep t, and the UNet's one-step estimate of the clean clip is made four
// times from the same noisy input: with the clip's caption rewritten to each of the four directions. Each
// estimate is decoded and the oracle measures the object's mean velocity; the report gives, per t, the mean
// velocity along the direction the caption named (px/frame in the 64-pixel reference frame). A UNet that
// ignores the direction word gives the same velocity whatever the caption says (mean ≈ 0); one that follows it
// gives a positive mean. A second measure, the velocity of the object's colour mass, also follows the blurred
// blob of the highest-noise estimates, where the oracle often finds no object. The noisy input carries the
// clip's true motion too, more of it at lower t (none at t = 999 for a model trained on zero terminal SNR
// betas, which the script then uses).
import { Command } from 'commander';
import { DEFAULT_MODEL_DIR } from '../src/cli/generate.js';
import { intOption } from '../src/cli/options.js';
import { hostTensor } from '../src/engine/runtime.js';
import { Generator } from '../src/engine/random.js';
import { TextToVideoPipeline, postprocess } from '../src/pipelines/text_to_video.js';
import { DDPMScheduler } from '../src/schedulers/ddpm.js';
import { trainSchedulerConfig } from '../src/training/stages/unet.js';
import { COLOUR_RGB, canonicalCaption, toFloatCHW, worldSample } from '../src/training/data/world.js';
import type { MotionName, SceneSpec } from '../src/training/data/world.js';
import { scoreVideo } from '../src/training/data/oracle.js';
import { colourMassVelocity, velocityAlong } from '../src/training/data/colour_mass.js';
import { compileUnetOneStep } from './lib/unet_one_step.js';

const DIRECTIONS: MotionName[] = ['left', 'right', 'up', 'down'];
const TIMESTEPS = [999, 990, 900, 800, 650];
const SIZE = 64;
const FRAMES = 16;

const o = new Command('check:caption-motion')
  .option('--model <dir>', 'pipeline folder (v- or ε-prediction UNet)', DEFAULT_MODEL_DIR)
  .option('--clips <n>', 'world clips', intOption('--clips', 1), 8)
  .option('--seed <n>', 'world seed and noise seed', intOption('--seed', 0), 7)
  .parse(process.argv)
  .opts<{ model: string; clips: number; seed: number }>();

const pipe = await TextToVideoPipeline.fromPretrained(o.model);
const { unet, vae } = pipe.components;
const schedulerConfig = pipe.components.scheduler.config as unknown as Record<string, unknown>;
const vPrediction = schedulerConfig['predictionType'] === 'v_prediction';
// The training schedule the model's sampler names: ModelScope's betas, rescaled to zero terminal SNR when its
// scheduler config says so (then the input at t = 999 is pure noise).
const zeroSnr = schedulerConfig['rescaleBetasZeroSnr'] === true;
const schedule = DDPMScheduler.fromConfig(trainSchedulerConfig(zeroSnr));
const alphas = schedule.alphasCumprod;
const f = vae.scaleFactor;
const shape = [1, unet.config.inChannels, FRAMES, SIZE / f, SIZE / f];
const unetStep = compileUnetOneStep(unet, shape);

/**
 * Velocities (px/frame, reference frame) along `d` of the object in the decoded one-step estimate: the
 * oracle's (NaN when it does not find the object) and the colour mass's.
 */
async function estimateVelocities(
  x0: Float32Array,
  caption: string,
  d: MotionName,
  rgb: readonly number[],
): Promise<{ oracle: number; mass: number }> {
  const frames = postprocess(await pipe.decodeLatents(hostTensor(x0, shape))).frames;
  const details = scoreVideo(frames, SIZE, SIZE, caption).details as {
    objects: Array<{ measured: { vx: number; vy: number } | null }>;
  };
  const m = details.objects[0]?.measured;
  return { oracle: m ? velocityAlong(d, m.vx, m.vy) : NaN, mass: massVelocityAlong(frames, rgb, d) };
}

/** Colour-mass velocity along d (px/frame). */
function massVelocityAlong(frames: Uint8Array[], rgb: readonly number[], d: MotionName): number {
  const { vx, vy } = colourMassVelocity(frames, SIZE, rgb);
  return velocityAlong(d, vx, vy);
}

const step = await unetStep;
const noise = new Generator(o.seed);
const along = new Map<number, number[]>(TIMESTEPS.map((t) => [t, []]));
const true_ = new Map<number, number[]>(TIMESTEPS.map((t) => [t, []]));
const massAlong = new Map<number, number[]>(TIMESTEPS.map((t) => [t, []]));
const massTrue = new Map<number, number[]>(TIMESTEPS.map((t) => [t, []]));
let found = 0;
for (let index = 600_000; found < o.clips; index++) {
  const s = worldSample(o.seed, index, { width: SIZE, height: SIZE, frames: FRAMES, split: 'train' });
  const obj = s.scene.objects[0]!;
  if (s.scene.objects.length !== 1 || s.scene.cameraPan !== null) continue;
  if (!DIRECTIONS.includes(obj.motion) || obj.size !== 'large') continue;
  found++;
  const video = hostTensor(toFloatCHW(s.frames, SIZE, SIZE), [FRAMES, 3, SIZE, SIZE]);
  const lat = (await pipe.encodeVideo(video)).data as Float32Array;
  for (const t of TIMESTEPS) {
    const eps = noise.normal(lat.length);
    const a = alphas[t]!;
    const xt = schedule.addNoise(lat, eps, [t]);
    const row: string[] = [];
    for (const d of DIRECTIONS) {
      const scene: SceneSpec = { ...s.scene, objects: [{ ...obj, motion: d }] };
      const caption = canonicalCaption(scene);
      const raw = await step(xt, t, await pipe.encodePrompt(caption));
      const x0 = vPrediction
        ? xt.map((v, i) => Math.sqrt(a) * v - Math.sqrt(1 - a) * raw[i]!)
        : xt.map((v, i) => (v - Math.sqrt(1 - a) * raw[i]!) / Math.sqrt(a));
      const { oracle: v, mass } = await estimateVelocities(x0, caption, d, COLOUR_RGB[obj.colour]);
      along.get(t)!.push(v);
      massAlong.get(t)!.push(mass);
      if (d === obj.motion) {
        true_.get(t)!.push(v);
        massTrue.get(t)!.push(mass);
      }
      row.push(`${d} ${Number.isFinite(v) ? v.toFixed(2) : '–'} (mass ${mass.toFixed(2)})`);
    }
    process.stderr.write(
      `clip ${found} (${obj.motion}), t=${t}: velocity along the caption's ${row.join(', ')}\n`,
    );
  }
}

const mean = (xs: number[]): string => {
  const ok = xs.filter(Number.isFinite);
  return ok.length ? (ok.reduce((p, q) => p + q, 0) / ok.length).toFixed(3) : '–';
};
console.log(
  `\nModel ${o.model}: ${o.clips} clips × 4 captions (left, right, up, down), seed ${o.seed}, ` +
    `${zeroSnr ? 'betas rescaled to zero terminal SNR' : "ModelScope's betas"}\n`,
);
console.log(
  '| t | oracle: mean velocity along the captioned direction (all 4 captions) | … true caption only | found | ' +
    'colour mass: along the captioned direction | … true caption only |',
);
console.log('|---|---|---|---|---|---|');
for (const t of TIMESTEPS) {
  const xs = along.get(t)!;
  console.log(
    `| ${t} | ${mean(xs)} | ${mean(true_.get(t)!)} | ${xs.filter(Number.isFinite).length}/${xs.length} | ` +
      `${mean(massAlong.get(t)!)} | ${mean(massTrue.get(t)!)} |`,
  );
}
