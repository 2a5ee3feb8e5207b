// `--long naive`: plain continuation by replacement (the baseline every long-video paper compares against).
// Each chunk starts from fresh noise; its first O frames are the previous chunk's last O frames (as
// written), noised to the current level with one fixed draw of noise per chunk and written over the
// chunk's overlap frames before the first step and after every step, so the new frames are denoised next to
// a faithful, consistently noised copy of what is already on screen (the "replacement" conditioning of
// Ho et al. 2022, §3.1).
import { renoise, levelAfter } from './chunked.js';
import type { ChunkContext, LongVideoMode } from './chunked.js';
import { latentLength, setFrames, sliceFrames } from './latent_frames.js';

export function naiveMode(): LongVideoMode {
  // One noise draw per chunk for its overlap frames (the same ε at every level: a smooth path to x_0).
  const overlapNoise = new Map<number, Float32Array>();
  return {
    name: 'naive',
    initialLatents: (c) => c.generator.normal(latentLength(c.shape)),
    guide(c: ChunkContext, step: number, latents: Float32Array): void {
      const prev = c.previous;
      const o = c.plan.overlap;
      if (!prev || o === 0) return;
      const target = sliceFrames(prev.final, c.shape, c.plan.chunk - o, o);
      let noise = overlapNoise.get(c.index);
      if (!noise) {
        overlapNoise.clear();
        noise = c.generator.normal(target.length);
        overlapNoise.set(c.index, noise);
      }
      setFrames(latents, c.shape, 0, renoise(target, noise, levelAfter(c, step), c.alphasCumprod));
    },
  };
}
