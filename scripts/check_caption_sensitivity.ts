// `npx tsx scripts/check_caption_sensitivity.ts <model dir>`: relative difference of the UNet output between captions
// (left/right, another colour and shape, empty) and between noise draws, at t = 999, 900, 500 — how much the
// caption moves the output at all (the direction gate's diagnostic, models/default/MODEL_CARD.md).
import { TextToVideoPipeline } from '../src/pipelines/text_to_video.js';
import { compileWithWeights } from '../src/nn/compile.js';
import { hostTensor } from '../src/engine/runtime.js';
import { Generator } from '../src/engine/random.js';
import type { Tensor } from '../src/engine/tensor.js';
const dir = process.argv[2]!;
const pipe = await TextToVideoPipeline.fromPretrained(dir);
const { unet } = pipe.components;
const shape = [1, 4, 16, 16, 16];
const { exe } = await compileWithWeights(
  (x: Tensor, t: Tensor, c: Tensor, fps: Tensor) => unet.forward(x, t, c, { fps }),
  [
    { name: 'x', shape },
    { name: 't', shape: [1] },
    { name: 'c', shape: [1, 77, unet.config.crossAttentionDim] },
    { name: 'fps', shape: [1] },
  ],
  unet.stateDict,
);
const x = new Generator(5).normal(4 * 16 * 256);
const caps = [
  'a large red circle moves left quickly on a blue background',
  'a large red circle moves right quickly on a blue background',
  'a large green square moves left quickly on a yellow background',
  '',
];
const embs = await Promise.all(caps.map((c) => pipe.encodePrompt(c)));
const rel = (a: Float32Array, b: Float32Array) => {
  let d = 0,
    n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return Math.sqrt(d / n);
};
console.log(
  'text states rel diff left/right',
  rel(embs[0]!.data as Float32Array, embs[1]!.data as Float32Array).toFixed(4),
  'left/green',
  rel(embs[0]!.data as Float32Array, embs[2]!.data as Float32Array).toFixed(4),
);
for (const t of [999, 900, 500]) {
  const outs = [];
  for (const e of embs)
    outs.push(
      (
        await exe.run({
          x: hostTensor(x, shape),
          t: hostTensor(Float32Array.of(t), [1]),
          c: e,
          fps: hostTensor(Float32Array.of(8), [1]),
        })
      )['out0']!.data as Float32Array,
    );
  const x2 = new Generator(6).normal(x.length);
  const o2 = (
    await exe.run({
      x: hostTensor(x2, shape),
      t: hostTensor(Float32Array.of(t), [1]),
      c: embs[0]!,
      fps: hostTensor(Float32Array.of(8), [1]),
    })
  )['out0']!.data as Float32Array;
  console.log(
    `t=${t}: out rel diff left/right ${rel(outs[0]!, outs[1]!).toFixed(4)}, left/green-square ${rel(outs[0]!, outs[2]!).toFixed(4)}, left/empty ${rel(outs[0]!, outs[3]!).toFixed(4)}, other noise ${rel(outs[0]!, o2).toFixed(4)}`,
  );
}
