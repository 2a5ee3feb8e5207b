// What the adapters that live next to a pipeline folder's components share (StreamingT2V's streaming/, the
// image-to-video image_adapter/): the check that they were trained on this folder's base UNet, and the guided
// program that runs the (uncond, cond) pair through base + adapter with the adapter's own inputs.
import type { Tensor } from '../engine/tensor.js';
import * as op from '../engine/ops.js';
import type { HostTensor } from '../engine/runtime.js';
import { compileWithWeights } from '../nn/compile.js';
import type { CompiledFunction } from '../nn/compile.js';
import type { StateDict } from '../nn/module.js';
import { baseFingerprint } from '../models/streaming/config.js';
import { findWeightsFile } from '../io/model_folder.js';
import { joinPath as join, resolveLoader } from '../io/loader.js';
import type { FileLoader } from '../io/loader.js';
import type { GuidedDenoiser, TextToVideoPipeline } from './text_to_video.js';
import { KinemaError } from '../errors.js';

/**
 * Adapters are a delta on one set of weights: when their config records `base_unet_sha256`, `dir/unet`'s
 * weights file must have that SHA-256, else `code` (e.g. STREAMING_WRONG_BASE) naming both fingerprints.
 */
export function checkAdapterBase(
  dir: string,
  adapterDir: string,
  want: unknown,
  code: 'STREAMING_WRONG_BASE' | 'I2V_WRONG_BASE',
  loader?: FileLoader,
): void {
  if (typeof want !== 'string') return;
  const f = resolveLoader(loader).open(findWeightsFile(join(dir, 'unet'), loader ? { loader } : {}));
  let have: string;
  try {
    have = baseFingerprint(f.read(0, f.size));
  } finally {
    f.close();
  }
  if (have !== want)
    throw new KinemaError(
      code,
      `${adapterDir} was trained on another base UNet (weights SHA-256 ${want.slice(0, 12)}…, ${dir}/unet is ` +
        `${have.slice(0, 12)}…): adapters only work on the weights they were trained with; retrain them on this model`,
    );
}

/** The guided prediction of the pair [x, x]: `extra` holds the adapter's inputs by feed name. */
export type AdapterPrediction = (
  pair: Tensor,
  timestep: Tensor,
  context: Tensor,
  extra: Record<string, Tensor>,
  fps: Tensor | undefined,
) => Tensor;

/**
 * A `GuidedDenoiser` for `pipe.generate`: the pipeline's inputs, then `feeds` (in their order) as extra
 * inputs; ε_u + ω·(ε_c − ε_u) of `predict`'s pair. One compiled program per shape set, kept in `cache`.
 */
export function adapterDenoiser(
  pipe: TextToVideoPipeline,
  weights: StateDict,
  cache: Map<string, Promise<CompiledFunction>>,
  feeds: Record<string, HostTensor>,
  predict: AdapterPrediction,
): GuidedDenoiser {
  const names = Object.keys(feeds);
  return {
    feeds,
    program: (latentShape, ctxShape, withFps) => {
      const shapes = names.map((n) => `${n}:${feeds[n]!.shape.join(',')}`).join(';');
      const key = `${latentShape.join(',')}|${ctxShape.join(',')}|${shapes}|${withFps}`;
      let hit = cache.get(key);
      if (!hit) {
        const fn = (x: Tensor, t: Tensor, ctx: Tensor, scale: Tensor, ...rest: Tensor[]): Tensor => {
          const fps = withFps ? rest[0] : undefined;
          const given = withFps ? rest.slice(1) : rest;
          const extra = Object.fromEntries(names.map((n, i) => [n, given[i]!]));
          const eps = predict(op.concat([x, x], 0), t, ctx, extra, fps);
          const [u, c] = op.chunk(eps, 2, 0) as [Tensor, Tensor];
          return op.add(u, op.mul(op.sub(c, u), scale));
        };
        const specs = [
          { name: 'latents', shape: [...latentShape] },
          { name: 'timestep', shape: [1] },
          { name: 'context', shape: [...ctxShape] },
          { name: 'guidance', shape: [] },
          ...(withFps ? [{ name: 'fps', shape: [1] }] : []),
          ...names.map((n) => ({ name: n, shape: [...feeds[n]!.shape] })),
        ];
        hit = compileWithWeights(fn, specs, weights, { ep: pipe.ep });
        cache.set(key, hit);
        hit.catch(() => cache.delete(key));
      }
      return hit;
    },
  };
}
