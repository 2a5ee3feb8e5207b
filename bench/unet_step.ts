// `npm run bench:unet`: one denoising step (UNet3D forward) of the ModelScope block structure at reduced width —
// block_out_channels (64,128,256,256), 2 layers per block, cross_attention_dim 1024, batch 1 × 16 frames ×
// 32×32 latents, 77 context tokens — with random weights. Prints time (median of runs after a warm-up) and the
// process's peak resident memory.
import { UNet3DConditionModel } from '../src/models/unet3d/unet3d.js';
import { hostTensor } from '../src/engine/runtime.js';
import { Generator } from '../src/engine/random.js';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] ?? 0) || 3;
const config = {
  _class_name: 'UNet3DConditionModel',
  act_fn: 'silu',
  attention_head_dim: 64,
  block_out_channels: [64, 128, 256, 256],
  cross_attention_dim: 1024,
  down_block_types: ['CrossAttnDownBlock3D', 'CrossAttnDownBlock3D', 'CrossAttnDownBlock3D', 'DownBlock3D'],
  up_block_types: ['UpBlock3D', 'CrossAttnUpBlock3D', 'CrossAttnUpBlock3D', 'CrossAttnUpBlock3D'],
  in_channels: 4,
  out_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  sample_size: 32,
};
const unet = UNet3DConditionModel.fromConfig(config);
unet.initParameters(0);
const params = unet.parameterCount();
const g = new Generator(1);
const sample = hostTensor(g.normal(4 * 16 * 32 * 32), [1, 4, 16, 32, 32]);
const ctx = hostTensor(g.normal(77 * 1024), [1, 77, 1024]);
let peak = process.memoryUsage().rss;
const poll = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
const t0 = performance.now();
await unet.run(sample, 981, ctx);
const first = (performance.now() - t0) / 1000;
const times: number[] = [];
for (let i = 0; i < runs; i++) {
  const t = performance.now();
  await unet.run(sample, 981, ctx);
  times.push((performance.now() - t) / 1000);
}
clearInterval(poll);
peak = Math.max(peak, process.memoryUsage().rss);
times.sort((a, b) => a - b);
console.log(
  `UNet3D (64,128,256,256) ${(params / 1e6).toFixed(1)} M params, 1×4×16×32×32, ctx 77×1024, ONNX Runtime default threads (one per core)`,
);
console.log(
  `first call (trace + compile + run): ${first.toFixed(2)} s; step: median ${times[Math.floor(times.length / 2)]!.toFixed(2)} s over ${runs} runs; peak RSS ${(peak / 2 ** 30).toFixed(2)} GiB`,
);
