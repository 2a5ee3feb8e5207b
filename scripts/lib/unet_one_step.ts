// Shared by the caption diagnostics (check:caption-motion, check:direction, check_caption_sensitivity): one
// UNet forward on a single video (no guidance pair, so the caption's own effect is seen), and the pipeline
// folder of a UNet run (the components' tokenizer, text encoder and VAE next to the run's exported UNet).
import { cpSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor } from '../../src/engine/tensor.js';
import { hostTensor } from '../../src/engine/runtime.js';
import type { HostTensor } from '../../src/engine/runtime.js';
import { compileWithWeights } from '../../src/nn/compile.js';
import type { UNet3DConditionModel } from '../../src/models/unet3d/unet3d.js';
import { exportUnetCheckpoint } from '../../src/training/stages/unet.js';

/** The UNet's raw output (ε or v) for input x [1, C, F, h, w] at timestep t under `context` [1, 77, D]. */
export type UnetOneStep = (
  x: Float32Array,
  t: number,
  context: HostTensor,
  fps?: number,
) => Promise<Float32Array>;

export async function compileUnetOneStep(
  unet: UNet3DConditionModel,
  shape: readonly number[],
): Promise<UnetOneStep> {
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
  return async (x, t, context, fps = 8) => {
    const out = await exe.run({
      x: hostTensor(x, shape),
      t: hostTensor(Float32Array.of(t), [1]),
      c: context,
      fps: hostTensor(Float32Array.of(fps), [1]),
    });
    return out['out0']!.data as Float32Array;
  };
}

/** `<out>/model`: the conditioning components copied from `componentsDir` once, then the run's latest UNet. */
export function exportRunModel(out: string, componentsDir: string): string {
  const model = join(out, 'model');
  if (!existsSync(model)) {
    mkdirSync(model, { recursive: true });
    for (const c of ['tokenizer', 'text_encoder', 'vae'])
      cpSync(join(componentsDir, c), join(model, c), { recursive: true });
  }
  exportUnetCheckpoint(out, model);
  return model;
}
