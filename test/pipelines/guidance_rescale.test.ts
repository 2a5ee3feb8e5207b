// Guidance rescale (diffusers' guidance_rescale): the formula on known values, and the pipeline option.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { CLIPTokenizer } from '../../src/models/clip/tokenizer.js';
import { CLIPTextModel } from '../../src/models/clip/text_model.js';
import { UNet3DConditionModel } from '../../src/models/unet3d/unet3d.js';
import { AutoencoderKL } from '../../src/models/vae/autoencoder_kl.js';
import { loadScheduler } from '../../src/schedulers/index.js';
import { TextToVideoPipeline, rescaleGuidance } from '../../src/pipelines/text_to_video.js';

const FIX = resolve(
  process.env['KINEMA_PARITY_FIXTURES'] ?? resolve(process.cwd(), '../shared/fixtures/parity'),
);

test('rescaleGuidance: φ·guided·σ_cond/σ_guided + (1 − φ)·guided, σ the unbiased standard deviation', () => {
  // guided = [1, 2, 3, 4]: mean 2.5, Σ(x − m)² = 5, σ = √(5/3); cond = [0, 0, 2, 2]: σ = √(4/3).
  const k = 0.7 * Math.sqrt(4 / 5) + 0.3;
  const out = rescaleGuidance(Float32Array.of(1, 2, 3, 4), Float32Array.of(0, 0, 2, 2), 0.7);
  [1, 2, 3, 4].forEach((v, i) => assert.ok(Math.abs(out[i]! - v * k) < 1e-6, `element ${i}`));
  assert.deepEqual(rescaleGuidance(Float32Array.of(1, 2), Float32Array.of(5, 9), 0), Float32Array.of(1, 2));
  assert.deepEqual(rescaleGuidance(Float32Array.of(3, 3), Float32Array.of(5, 9), 1), Float32Array.of(3, 3));
});

test('the pipeline applies guidanceRescale and rejects values outside [0, 1]', async () => {
  const pipe = new TextToVideoPipeline({
    tokenizer: await CLIPTokenizer.fromPretrained(join(FIX, 'tokenizer')),
    textEncoder: await CLIPTextModel.fromPretrained(join(FIX, 'text_encoder')),
    unet: await UNet3DConditionModel.fromPretrained(join(FIX, 'unet3d')),
    vae: await AutoencoderKL.fromPretrained(join(FIX, 'vae')),
    scheduler: await loadScheduler(join(FIX, 'scheduler', 'ddim')),
  });
  const run = async (guidanceRescale: number): Promise<Float32Array> => {
    const o = {
      prompt: 'a red circle',
      numFrames: 2,
      height: 32,
      width: 32,
      numInferenceSteps: 1,
      guidanceRescale,
    };
    for await (const e of pipe.generate(o)) if (e.kind === 'step') return e.latents.data as Float32Array;
    throw new Error('no step');
  };
  const [plain, rescaled] = [await run(0), await run(0.7)];
  let diff = 0;
  for (let i = 0; i < plain.length; i++) diff = Math.max(diff, Math.abs(plain[i]! - rescaled[i]!));
  assert.ok(diff > 1e-4, `rescaling changes the step (max difference ${diff})`);
  await assert.rejects(run(1.5), /guidanceRescale must be in \[0, 1\], got 1\.5/);
});
