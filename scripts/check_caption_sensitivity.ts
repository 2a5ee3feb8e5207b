// `npx tsx scripts/check_caption_sensitivity.ts <model dir>`: relative difference of the UNet output between
// captions (left/right, another colour and shape, empty) and between noise draws, at t = 999, 900, 500 — how
// much the caption moves the output at all (the direction gate's diagnostic, models/default/MODEL_CARD.md).
import { TextToVideoPipeline } from '../src/pipelines/text_to_video.js';
import { Generator } from '../src/engine/random.js';
import { compileUnetOneStep } from './lib/unet_one_step.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: check_caption_sensitivity.ts <model dir>');
const pipe = await TextToVideoPipeline.fromPretrained(dir);
const { unet, vae } = pipe.components;
const shape = [1, unet.config.inChannels, 16, 64 / vae.scaleFactor, 64 / vae.scaleFactor];
const unetStep = await compileUnetOneStep(unet, shape);
const n = shape.reduce((p, q) => p * q, 1);
const [x, otherNoise] = [new Generator(5).normal(n), new Generator(6).normal(n)];
const captions = [
  'a large red circle moves left quickly on a blue background',
  'a large red circle moves right quickly on a blue background',
  'a large green square moves left quickly on a yellow background',
  '',
];
const embeds = await Promise.all(captions.map((c) => pipe.encodePrompt(c)));

/** ‖a − b‖ / ‖b‖. */
function relative(a: Float32Array, b: Float32Array): string {
  let [d, m] = [0, 0];
  for (let i = 0; i < a.length; i++) [d, m] = [d + (a[i]! - b[i]!) ** 2, m + b[i]! ** 2];
  return Math.sqrt(d / m).toFixed(4);
}
const states = embeds.map((e) => e.data as Float32Array);
console.log(
  `text states: left/right ${relative(states[0]!, states[1]!)}, left/green square ${relative(states[0]!, states[2]!)}`,
);
for (const t of [999, 900, 500]) {
  const outs: Float32Array[] = [];
  for (const e of embeds) outs.push(await unetStep(x, t, e)); // one session: one run at a time
  const [left, right, green, empty] = outs;
  const other = await unetStep(otherNoise, t, embeds[0]!);
  console.log(
    `t=${t}: output left/right ${relative(left!, right!)}, left/green square ${relative(left!, green!)}, ` +
      `left/empty ${relative(left!, empty!)}, left on other noise ${relative(left!, other)}`,
  );
}
